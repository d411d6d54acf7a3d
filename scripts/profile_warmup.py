"""Where an actor's warm-up goes: dynamo's tracing, AOT autograd, inductor, loading kernels, CUDA graphs.

    python scripts/profile_warmup.py                               # attn_only, 10 units, then mlp_only
    python scripts/profile_warmup.py --units 10 7 --then-group mlp_only --generate

Loads the model in a `ModelWorker` (the code each ModelActor runs, with its keyed on-disk compile cache),
then times each warm-up: the first (it compiles, or reads the on-disk cache when a previous run filled it),
one per further batch size in `--units` (a decoder for more units serves fewer: nothing compiles, and the
warm-up batch is skipped: `batch_ran` false), and one
after switching to `--then-group` (other unit stacks: another graph). Each phase reports its seconds and
torch's own compile metrics for it (`torch._dynamo.utils.compilation_time_metrics`): what is left of a
phase after `_compile.compile_inner` is the warm-up's steps, its CUDA-graph recording and allocations.
Run it twice on one machine for the cold and the warm cache (`step_loaded`: the compiled step came from
the cache's precompiled steps, untraced). `--generate` also times one full batch.
Prints one JSON object (docs/performance.md, "Where a warm-up goes").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()

import torch  # noqa: E402
import transformers  # noqa: E402, F401  (its import counts in import_s, as in an actor)

IMPORT_S = time.perf_counter() - STARTED
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch._dynamo.utils import compilation_time_metrics, counters  # noqa: E402

from configs.experiments import apply_overrides, get_config  # noqa: E402
from degrader.decoding.compile_cache import use_model_compile_cache  # noqa: E402
from degrader.run.plan import Unit  # noqa: E402
from degrader.run.worker import ModelWorker  # noqa: E402

# torch's compile phases, outermost first: compile_inner holds the others
METRICS = ("_compile.compile_inner", "bytecode_tracing", "build_guards", "OutputGraph.call_user_compiler",
           "create_aot_dispatcher_function", "compile_fx_inner", "PyCodeCache.load_by_key_path",
           "async_compile.wait")
COUNTERS = ("aot_autograd", "inductor", "stats")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="random:gemma-3-4b-it")
    parser.add_argument("--group", default="attn_only")
    parser.add_argument("--units", type=int, nargs="+", default=[10], help="units per batch of each warm-up")
    parser.add_argument("--then-group", default="mlp_only", help="another group warmed up last ('' for none)")
    parser.add_argument("--max-new-tokens", type=int, default=350)
    parser.add_argument("--compile-mode", default="reduce-overhead")
    parser.add_argument("--generate", action="store_true", help="also time one full batch after the warm-ups")
    return parser.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def phase(device: torch.device, fn) -> dict:
    """fn()'s seconds, torch's compile metrics recorded meanwhile (seconds) and its compile counters."""
    counters.clear()
    before = {name: len(compilation_time_metrics.get(name, [])) for name in METRICS}
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    result = {"s": round(time.perf_counter() - started, 2)}
    for name in METRICS:
        result[name] = round(sum(compilation_time_metrics.get(name, [])[before[name]:]), 2)
    result["counters"] = {name: dict(counters[name]) for name in COUNTERS if name in counters}
    return result


def main() -> None:
    args = parse_args()
    config = apply_overrides(get_config("dreams_it"), [
        f"model_name={args.model}", f"param_group_name={args.group}", f"max_new_tokens={args.max_new_tokens}",
        "degradation_method=mult_gauss", "min_deg=0", "max_deg=0.5"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    worker = ModelWorker(config, device, "profile", ignore_eos=True, compile_mode=args.compile_mode)
    report = {"gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "model": args.model, "import_s": round(IMPORT_S, 2), "load": phase(device, worker.load)}
    # the launcher's keyed on-disk compile cache (as ModelActor.load sets it), before the first compile
    report["compile_cache"] = str(use_model_compile_cache(worker.loaded).directory)
    worker.keep_steps_in(Path(report["compile_cache"]))  # as an actor: its compiled steps saved and loaded

    def warm_up(n_units: int) -> dict:
        """One timed warm-up, and whether it decoded its batch (False: the decoder in place serves it)."""
        ran = []
        timed = phase(device, lambda: (worker.fit_stacks(n_units), ran.append(worker.warm_up(n_units))))
        loaded = any(decoder.step_loaded for decoder in worker.decoders.decoders.values())
        return {**timed, "batch_ran": ran[0], "step_loaded": loaded}

    for n_units in args.units:
        report[f"warm_up {args.group} {n_units} units"] = warm_up(n_units)
        print(json.dumps({n_units: report[f"warm_up {args.group} {n_units} units"]["s"]}), file=sys.stderr)
    if args.generate:
        units = [Unit(0.3, r, tuple(range(len(config.prompts)))) for r in range(args.units[0])]
        worker.fit_stacks(len(units))
        worker.lesion(units)
        reports = []
        generation = phase(device, lambda: reports.extend(worker.generate_units(units, lambda records: None)))
        # the units the batch really held (what fits may be fewer than asked), every prompt of each
        generation["tokens_per_s"] = round(len(reports) * len(config.prompts) * args.max_new_tokens / generation["s"])
        report[f"generate {len(reports)} units"] = generation
    if args.then_group:
        worker.prepare(config.replace(param_group_name=args.then_group))
        report[f"warm_up {args.then_group} {args.units[0]} units"] = warm_up(args.units[0])
    if device.type == "cuda":
        report["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    report["total_s"] = round(time.perf_counter() - STARTED, 2)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
