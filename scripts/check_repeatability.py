"""One process of an actor's decode path, without Ray, whose records another process should repeat exactly.

    python scripts/check_repeatability.py --out /tmp/rep/1 --set n_rep=2      # then again with --out /tmp/rep/2
    python scripts/compare_runs.py /tmp/rep/1 /tmp/rep/2                      # 0: the same texts, 1: not

The process does what a ModelActor does for a variant (degrader/run/worker.py): load the model, keep its decode
steps in the model's compile cache (saved by the first process, loaded by the next; --no-steps: compiled in each
process, never saved), warm up for the batch, run the units with their lesions, and writes the records as an output
file in --out (written here, not through the results writer: a scratch folder per process, never a results
folder a launch resumes). Two GPU processes gave different texts with the same batch shapes until the worker
made them repeatable (degrader/decoding/repeatable.py; docs/performance.md, "Records across launches: what makes
them repeat"): running this in two processes checks that they still do, for a model, a variant or a GPU
(--no-steps: with the step compiled in each process; --set units_per_batch=1: the per-unit path). --again runs
the units a second time in the same process (records in <out>/again) and compares the two passes: runs that
repeat within a process and not across processes point at what a process chooses once (a compiled or loaded
step), not at a race.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from configs.experiments import apply_overrides, get_config  # noqa: E402
from degrader.decoding.compile_cache import use_model_compile_cache  # noqa: E402
from degrader.files import atomic_write  # noqa: E402
from degrader.run.compare import compare_outputs  # noqa: E402
from degrader.run.plan import Unit, missing_units, output_path  # noqa: E402
from degrader.run.worker import ModelWorker  # noqa: E402

AGAIN = "again"  # --again: the second pass's folder, inside --out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The variant (a config and --set assignments), the device, where the records go."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default="dreams_it", help="experiment config")
    parser.add_argument("--model", default="random:gemma-3-4b-it", help="model spec (embedded on a CPU machine)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config overrides")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-steps", action="store_true",
                        help="compile the decode step in this process (the compile caches as an actor has them), "
                             "without saving or loading the step")
    parser.add_argument("--out", type=Path, required=True, help="folder for the output file (a new one per process)")
    parser.add_argument("--again", action="store_true",
                        help=f"run the units a second time in this process, into <out>/{AGAIN}, and compare the passes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every unit of the variant in this process and write its records (with --again twice, compared); prints
    where the time went. 0: done (and the passes the same), 1: the second pass differs, 2: bad input."""
    args = parse_args(argv)
    try:  # before any model loads: an unknown config, a bad --set or a device this machine lacks is one line
        config = apply_overrides(get_config(args.config), [f"model_name={args.model}", *args.set])
        device = check_device(args.device)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = output_path(config, args.out)
    for existing in (path, output_path(config, args.out / AGAIN)) if args.again else (path,):
        if existing.exists():
            print(f"error: {existing} exists: give each process its own --out folder", file=sys.stderr)
            return 2
    try:  # a folder that cannot be made fails now, not after the units
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: --out {args.out}: {error.strerror}: give a folder this process can create", file=sys.stderr)
        return 2
    started = time.perf_counter()
    worker = ModelWorker(config, device, "check_repeatability")
    worker.load()
    compile_cache = use_model_compile_cache(worker.loaded)  # as ModelActor.load: before the first compile
    if not args.no_steps:
        worker.keep_steps_in(compile_cache.directory)
    units = missing_units(config, set())
    loaded_s = time.perf_counter() - started
    worker.warm_up(len(units))
    warm_s = time.perf_counter() - started - loaded_s
    records, units_s = run_into(worker, units, path)
    steps = "saved or loaded" if worker.compiles else ("not compiled" if not worker.static else "compiled unsaved")
    print(f"{len(records)} records of {len(units)} units ({worker.units_per_batch} per batch, decode steps {steps}) "
          f"in {path}; load {loaded_s:.1f}s, warm-up {warm_s:.1f}s, units {units_s:.1f}s")
    if not args.again:
        return 0
    again = args.out / AGAIN
    again.mkdir(exist_ok=True)
    records, units_s = run_into(worker, units, output_path(config, again))
    comparisons = compare_outputs(args.out, again)
    print(f"again in this process: {len(records)} records in {again}, units {units_s:.1f}s; "
          + "; ".join(comparison.line() for comparison in comparisons))
    return 0 if all(comparison.identical for comparison in comparisons) else 1


def check_device(name: str) -> torch.device:
    """`name` as a torch device this machine has; ValueError that says which ones it has."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    have = "cpu" + (f", cuda:0 to cuda:{gpus - 1}" if gpus else " (no CUDA GPU)")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name} is not a torch device: give one of {have}") from None
    if device.type == "cuda" and (device.index or 0) >= gpus:
        raise ValueError(f"--device {name}: this machine has {have}")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name}: give one of {have}")
    return device


def run_into(worker: ModelWorker, units: list[Unit], path: Path) -> tuple[list[dict], float]:
    """Run `units` with their lesions, write their records to `path`; the records and the seconds they took."""
    started = time.perf_counter()
    records: list[dict] = []
    worker.run_units(units, records.extend)
    if worker.device.type == "cuda":  # the units' time, not their queued kernels'
        torch.cuda.synchronize(worker.device)
    units_s = time.perf_counter() - started
    atomic_write(path, lambda handle: json.dump(records, handle))
    return records, units_s


if __name__ == "__main__":
    sys.exit(main())
