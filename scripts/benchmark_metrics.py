"""Records per second of the metrics: one process against the Ray job.

python scripts/benchmark_metrics.py [--records 2000] [--workers 2] [--address A]

Replicates the committed samples' free-production records (dreams, Cookie Theft) to --records records
with distinct keys (repeat_index) and distinct texts (a numbered sentence appended, so the parse cache
cannot serve a copy: every record costs a full parse and encoding), then times
`analysis.metrics_store.score_records` (one process) and `analysis.metrics_store.score_with_ray`, each in a
fresh child process so neither gets the other's loaded models or caches. Start-up (Ray, spaCy, the
encoder) is included in both, as a user pays it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLES = ("*dreams*.json", "*cookies*.json")


def replicated(count: int) -> list[dict]:
    """`count` records cycled from the samples, each with its own repeat_index and text."""
    base = [record for pattern in SAMPLES for path in sorted((ROOT / "results" / "samples").glob(pattern))
            for record in json.loads(path.read_text())]
    return [{**record, "repeat_index": 1000 + copy, "output": f"{record['output']} This is copy {copy}."}
            for copy, record in ((i, base[i % len(base)]) for i in range(count))]


def child(mode: str, path: Path, workers: int, address: str | None) -> None:
    """Score the records at `path` one way and print records per second (run in a fresh process)."""
    records = json.loads(path.read_text())
    started = time.perf_counter()
    from analysis.metrics_store import register_metrics, score_records

    names = register_metrics()
    if mode == "ray":
        from analysis.metrics_store import score_with_ray

        table = score_with_ray(records, names, address=address, workers=workers)
    else:
        table = score_records(records, names)
    elapsed = time.perf_counter() - started
    print(json.dumps({"mode": mode, "records": len(table), "seconds": round(elapsed, 1),
                      "records_per_s": round(len(table) / elapsed, 2)}))


def run(mode: str, path: Path, args: argparse.Namespace) -> dict:
    """Time one mode in a child process."""
    command = [sys.executable, __file__, "--child", mode, "--input", str(path), "--workers", str(args.workers)]
    command += ["--address", args.address] if args.address else []
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000, help="records to score")
    parser.add_argument("--workers", type=int, default=2, help="Ray tasks at a time (local cluster CPUs)")
    parser.add_argument("--address", help="Ray cluster to join instead of a local one")
    parser.add_argument("--only", choices=("one", "ray"), help="time one mode only")
    parser.add_argument("--child", choices=("one", "ray"), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.input, args.workers, args.address)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "records.json"
        path.write_text(json.dumps(replicated(args.records)))
        for mode in (args.only,) if args.only else ("one", "ray"):
            print(json.dumps(run(mode, path, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
