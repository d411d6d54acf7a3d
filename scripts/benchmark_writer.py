"""Writer benchmark: the cost of one flush (20 records) with 1k vs 100k records already in the output.

    python scripts/benchmark_writer.py            # prints a table; the flush must not grow with the file
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from degrader.run.keys import record_key  # noqa: E402
from degrader.run.store import ResultStore  # noqa: E402


def record(i: int) -> dict:
    """A record of realistic size (about 2 kB: a 350-token output)."""
    return {"param_group_name": "attn_only", "degradation_method": "mult_gauss", "level_value": 0.5,
            "repeat_index": i // 38, "prompt_text": f"prompt {i}", "model_name": "google/gemma-3-4b-it",
            "settings_hash": "0" * 12, "output": "word " * 350, "tokens": 350}


def time_flushes(existing: int, flushes: int) -> tuple[float, float]:
    """Median and max seconds of a 20-record flush into an output already holding `existing` records."""
    with tempfile.TemporaryDirectory() as folder:
        store = ResultStore(Path(folder) / "out.json", record_key, flush_every=20, compact_every_s=float("inf"))
        store.add([record(i) for i in range(existing)])
        store.compact()
        times = []
        for n in range(flushes):
            batch = [record(existing + 20 * n + i) for i in range(20)]
            started = time.perf_counter()
            store.add(batch)  # the 20th record triggers the flush: append + fsync
            times.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.close()
        return statistics.median(times), max(times), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--flushes", type=int, default=50)
    args = parser.parse_args()
    print(f"{'records in file':>16} {'flush median ms':>16} {'flush max ms':>13} {'final compaction s':>19}")
    for size in args.sizes:
        median, worst, compaction = time_flushes(size, args.flushes)
        print(f"{size:>16,} {median * 1e3:>16.2f} {worst * 1e3:>13.2f} {compaction:>19.2f}")


if __name__ == "__main__":
    main()
