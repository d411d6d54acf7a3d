"""Time to result: a whole launch (e.g. a sweep) through the real launcher, cold and warm compile cache.

    python scripts/benchmark_sweep.py --gpus 4 -- --config dreams_it --sweep thesis --model random:gemma-3-4b-it
    python scripts/benchmark_sweep.py --gpus 0 --runs cold,warm -- --config dreams_it --model embedded \
        --max-prompts 1 --set n_rep=1 --set max_new_tokens=4 --sweep gauss_attn,quant_attn

Each run is `python scripts/launch.py <launch args> --gpus N` into fresh results and logs folders, so every
record is generated again. `cold` starts with an empty compile cache, `warm` reuses the one the previous run
filled. Only the compile cache is fresh: the benchmark's DEGRADER_CACHE links every other entry of the real
cache (the converted embedded model), and TORCHINDUCTOR_CACHE_DIR / TRITON_CACHE_DIR point into its compile
folder too (what an actor uses before it keys its own folder). The run log's `timings {json}` lines (one per
variant from the driver, a `total_s` one from the launcher) give the phases; without them only wall times,
records and tokens/s are reported. Every run after the first is compared with it record by record: "same text as
the first run" counts the records whose generated text is the same, and each output that differs gets a line on
stderr under the table (where its texts part; scripts/compare_runs.py compares any two results folders).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from degrader.embedded import cache_dir  # noqa: E402

RUN_KINDS = ("cold", "warm")
TIMINGS_LINE = re.compile(r"\btimings (\{.*\})\s*$")
WARM_UP_LINE = re.compile(r"warm-up for \d+ units? per batch: ([\d.]+)s")
VARIANT_KEYS = ("variant", "ray_start_s", "load_s", "warm_up_s", "ahead_s", "first_record_s", "generation_s",
                "variant_s")


@dataclass
class LogTimings:
    """What a run log says about where the time went; `missing` explains what it does not say."""

    variants: list[dict] = field(default_factory=list)
    total_s: float | None = None
    warm_ups_s: list[float] = field(default_factory=list)  # the driver's "warm-up for ..." lines, a fallback
    missing: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    """One launch: its wall time, exit code, the log's timings, and what its records say."""

    run: str
    gpus: int
    command: list[str]
    exit_code: int
    wall_s: float
    log_file: str | None
    timings: LogTimings
    records: int = 0
    tokens: int = 0
    tokens_per_s: float | None = None
    results_dir: str | None = None
    same_text: str | None = None  # "same/first": the first run's records this one has with the same text
    differences: list[str] = field(default_factory=list)  # per output that differs from the first run's: where


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options; everything after `--` goes to scripts/launch.py."""
    argv = sys.argv[1:] if argv is None else list(argv)
    own, launch_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], usage="%(prog)s [options] -- LAUNCH ARGS",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--gpus", type=int, default=1, help="--gpus of the launch (0: CPU actors)")
    parser.add_argument("--runs", default="cold,warm", help=f"comma-separated runs, in order: {', '.join(RUN_KINDS)}")
    parser.add_argument("--work-dir", type=Path, help="where the runs' cache, results and logs go (default: a new "
                        "temporary folder, kept)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(own)
    args.launch_args = launch_args
    args.runs = [run.strip() for run in args.runs.split(",") if run.strip()]
    if not args.runs or set(args.runs) - set(RUN_KINDS):
        parser.error(f"--runs {','.join(args.runs)}: use a comma-separated list of {', '.join(RUN_KINDS)}")
    if not launch_args:
        parser.error("give the launch arguments after --, e.g. -- --config dreams_it --sweep thesis")
    return args


def parse_timings(log_text: str) -> LogTimings:
    """The `timings {json}` lines of a run log (per variant, and the launcher's total), tolerant of their absence."""
    timings = LogTimings()
    for line in log_text.splitlines():
        if warm_up := WARM_UP_LINE.search(line):
            timings.warm_ups_s.append(float(warm_up.group(1)))
        if not (match := TIMINGS_LINE.search(line)):
            continue
        try:
            entry = json.loads(match.group(1))
        except json.JSONDecodeError:
            timings.missing.append(f"unreadable timings line: {line.strip()[:200]}")
            continue
        if "total_s" in entry:
            timings.total_s = float(entry["total_s"])
        if "variant" in entry:
            timings.variants.append({key: entry.get(key) for key in VARIANT_KEYS})
    if not timings.variants:
        timings.missing.append("no per-variant 'timings' lines in the log (a driver without them): "
                               "start, warm-up, first record and generation come only from fallbacks")
    if timings.total_s is None:
        timings.missing.append("no 'timings {\"total_s\": ...}' line from the launcher")
    return timings


def prepare_cache(work_dir: Path, run: str) -> Path:
    """The benchmark's DEGRADER_CACHE: the real cache's entries linked, its compile folder empty for `cold`."""
    cache = work_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    real = cache_dir()
    if real.is_dir() and real.resolve() != cache.resolve():
        for entry in real.iterdir():
            if entry.name != "compile" and not (cache / entry.name).exists():
                (cache / entry.name).symlink_to(entry.resolve())
    compile_folder = cache / "compile"
    if run == "cold" and compile_folder.exists():
        compile_folder.rename(work_dir / f"compile.before-{datetime.now():%Y%m%d_%H%M%S_%f}")  # kept, not deleted
    compile_folder.mkdir(exist_ok=True)
    return cache


def launch_environment(cache: Path) -> dict[str, str]:
    """The launch's environment: the benchmark's cache, and inductor's and Triton's default caches inside it."""
    compile_folder = cache / "compile"
    return {**os.environ, "DEGRADER_CACHE": str(cache),
            "TORCHINDUCTOR_CACHE_DIR": str(compile_folder / "inductor"),
            "TRITON_CACHE_DIR": str(compile_folder / "inductor" / "triton"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def run_launch(run: str, index: int, args: argparse.Namespace, work_dir: Path) -> RunResult:
    """Run scripts/launch.py once into fresh results and logs folders; time the whole command."""
    folder = work_dir / f"{index}-{run}"
    command = [sys.executable, str(ROOT / "scripts" / "launch.py"), *args.launch_args, "--gpus", str(args.gpus),
               "--results-dir", str(folder / "results"), "--logs-dir", str(folder / "logs")]
    environment = launch_environment(prepare_cache(work_dir, run))
    print(f"[{run}] {' '.join(command)}  (output: {folder / 'launch.out'})", file=sys.stderr, flush=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    with open(folder / "launch.out", "w", encoding="utf-8") as output:
        exit_code = subprocess.run(command, env=environment, cwd=ROOT, stdout=output,
                                   stderr=subprocess.STDOUT).returncode
    wall_s = time.perf_counter() - started
    log_file = next(iter(sorted((folder / "logs").glob("*.log"))), None)
    timings = parse_timings(log_file.read_text(encoding="utf-8")) if log_file else LogTimings(missing=["no log file"])
    result = RunResult(run, args.gpus, command, exit_code, round(wall_s, 1), str(log_file) if log_file else None,
                       timings, results_dir=str(folder / "results"))
    count_records(result, folder / "results")
    return result


def count_records(result: RunResult, results_dir: Path) -> None:
    """Records and tokens in the run's outputs (as degrader/run/compare.py finds them: journals too, not what the
    store keeps aside); tokens/s over generation time (the timings, else record spans)."""
    from degrader.run.compare import output_names
    from degrader.run.store import CorruptOutputError, read_records

    try:
        names = sorted(output_names(results_dir))  # none in a folder the launch never made
        records = [r for name in names for r in read_records(results_dir / name)]
    except CorruptOutputError as error:  # the timings still get their table
        result.timings.missing.append(f"records not counted: {error}")
        return
    result.records = len(records)
    result.tokens = sum(int(r.get("tokens") or 0) for r in records)
    generation_s = sum(v.get("generation_s") or 0 for v in result.timings.variants) or _record_span(records)
    result.tokens_per_s = round(result.tokens / generation_s, 1) if generation_s and result.tokens else None


def mark_same_text(results: list[RunResult]) -> None:
    """Each run after the first: how many of the first run's records it has with the same generated text (records
    matched by key, degrader/run/compare.py), and how many it lacks or has beyond them. The same command twice
    should give the same records, on a GPU too since its workers run deterministic algorithms (docs/performance.md,
    "Records across launches: what makes them repeat")."""
    from degrader.run.compare import compare_outputs
    from degrader.run.store import CorruptOutputError

    for result in results[1:]:
        try:
            comparisons = compare_outputs(Path(results[0].results_dir), Path(result.results_dir))
        except CorruptOutputError as error:  # the timings still get their table
            result.timings.missing.append(f"records not compared: {error}")
            continue
        first = sum(c.matched + c.only_first for c in comparisons)
        if not first:  # the first run wrote nothing: nothing to be the same as
            continue
        same = sum(c.matched - c.outputs_differ for c in comparisons)
        missing, extra = sum(c.only_first for c in comparisons), sum(c.only_second for c in comparisons)
        result.same_text = f"{same}/{first}" + (f", {missing} missing" if missing else "") + (
            f", {extra} not in the first" if extra else "")
        result.differences = [c.line() for c in comparisons if not c.identical]


def _record_span(records: list[dict]) -> float | None:
    """Seconds from the first record's start to the last record's end (as scripts/throughput.py measures)."""
    spans = [(_seconds(r["timestamp"]) - float(r["duration"]), _seconds(r["timestamp"]))
             for r in records if r.get("timestamp") and r.get("duration") is not None]
    return max(end for _, end in spans) - min(start for start, _ in spans) if spans else None


def _seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def summary_row(result: RunResult) -> str:
    """One markdown row: run, GPUs, whole command, start (ray+load), warm-up per variant, first record, generation,
    records, tokens/s, records with the first run's text."""
    variants = result.timings.variants
    start = sum((v.get("ray_start_s") or 0) + (v.get("load_s") or 0) for v in variants) if variants else None
    warm_ups = [v.get("warm_up_s") for v in variants] or result.timings.warm_ups_s
    first = variants[0].get("first_record_s") if variants else None
    generation = sum(v.get("generation_s") or 0 for v in variants) if variants else None
    cells = [result.run + ("" if result.exit_code == 0 else f" (exit {result.exit_code})"), str(result.gpus),
             _figure(result.wall_s), _figure(start), " / ".join(_figure(w) for w in warm_ups) or "-",
             _figure(first), _figure(generation), str(result.records), _figure(result.tokens_per_s),
             result.same_text or "-"]
    return "| " + " | ".join(cells) + " |"


def markdown_table(results: list[RunResult]) -> str:
    """The summary table, one row per run, then per-variant rows where the logs have them, then what is missing."""
    lines = ["| run | GPUs | whole command s | start (ray+load) s | warm-up s per variant | first record s | "
             "generation s | records | tokens/s | same text as the first run |", "|---" * 10 + "|"]
    lines += [summary_row(result) for result in results]
    if any(result.timings.variants for result in results):
        lines += ["", "| run | " + " | ".join(VARIANT_KEYS) + " |", "|---" * (len(VARIANT_KEYS) + 1) + "|"]
        lines += [f"| {result.run} | " + " | ".join(str(v.get(k)) for k in VARIANT_KEYS) + " |"
                  for result in results for v in result.timings.variants]
    notes = sorted({note for result in results for note in result.timings.missing})
    return "\n".join(lines + ([""] + [f"note: {note}" for note in notes] if notes else []))


def main(argv: list[str] | None = None) -> int:
    """Run the launches in turn, print the table, write --json; exit 1 if a launch failed."""
    args = parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="benchmark_sweep_"))
    work_dir.mkdir(parents=True, exist_ok=True)
    results = [run_launch(run, index, args, work_dir) for index, run in enumerate(args.runs)]
    mark_same_text(results)
    print(markdown_table(results))
    for result in results[1:]:
        for line in result.differences:
            print(f"[{result.run}] against [{results[0].run}]: {line}", file=sys.stderr)
    print(f"\nlogs, results and the compile cache: {work_dir}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"work_dir": str(work_dir), "runs": [asdict(r) for r in results]}, indent=2))
    return 0 if all(result.exit_code == 0 for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
