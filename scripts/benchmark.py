"""GPU benchmark: the original pipeline's naive loop against the ModelActor paths, on one GPU.

    python scripts/benchmark.py            # 2 levels x 2 repetitions of mlp_only mult_gauss on dreams_it
    python scripts/benchmark.py --group attn_only --levels 0.3 --reps 10 --full --also mlp_only embed_only

All paths generate the 38 dreams_it prompts with 350 new tokens forced. (a) is the original loop: per
unit restore, degrade, `generate` with a dynamic cache, eager. (b) is `ModelWorker`, the code each
ModelActor runs, one repetition per batch: static KV cache, compiled decode step, in-place restore and
degrade. (c) is the same worker rep-batching: the repetitions of a level in one batch, as many as fit
in memory, each with its own degraded copy of the group. `--full` times the whole dreams_it (5 levels
x 10 repetitions) on (c); `--also` times (c) for other groups. Uses the real google/gemma-3-4b-it
where it loads, else random:gemma-3-4b-it (the same compute), and says which. `load_s` and
`compile_and_first_batch_s` give the start and the warm-up next to tokens/s; the compile cache is the
launcher's (keyed under the project's cache directory, degrader/decoding/compile_cache.py).

    python scripts/benchmark.py --sweep --gpus 4 -- --config dreams_it --sweep thesis --model random:gemma-3-4b-it

`--sweep` times whole launches through the real launcher instead (time to result: start, warm-up per
variant, first record, generation; cold and warm compile cache): it hands every other argument to
scripts/benchmark_sweep.py, whose --help lists them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.driver import take_batch  # noqa: E402
from configs.experiments import apply_overrides, get_config  # noqa: E402
from degrader import memory  # noqa: E402
from degrader.decoding.compile_cache import use_model_compile_cache  # noqa: E402
from degrader.decoding.generation import encode  # noqa: E402
from degrader.decoding.static_decode import bucket  # noqa: E402
from degrader.groups import is_vision  # noqa: E402
from degrader.run.plan import Unit, batch_sizes  # noqa: E402
from degrader.run.worker import ModelWorker  # noqa: E402
from degrader.seeding import repetition_seed  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model",
                        help="model spec (default: google/gemma-3-4b-it if it loads, else random:gemma-3-4b-it)")
    parser.add_argument("--group", default="mlp_only")
    parser.add_argument("--method", default="mult_gauss")
    parser.add_argument("--levels", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=350)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--naive-units", type=int, help="time the naive loop on the first N units only (it is slow)")
    parser.add_argument("--attention", help="attention implementation of the fast paths (default: grouped single-token "
                        "queries through the split-KV kernel on CUDA; degrader_sdpa = the same through SDPA; sdpa = "
                        "transformers' own)")
    parser.add_argument("--compile-mode", default="reduce-overhead", help="torch.compile mode of the decode step")
    parser.add_argument("--full", action="store_true",
                        help="also run the full dreams_it (5 levels x 10 reps), rep-batched")
    parser.add_argument("--also", nargs="*", default=[], help="more groups to time rep-batched on the same workload")
    parser.add_argument("--skip-per-unit", action="store_true", help="skip path (b)")
    parser.add_argument("--naive-only", action="store_true", help="time (a) only (a baseline for an earlier run)")
    parser.add_argument("--units-per-batch", "--reps-per-batch", dest="units_per_batch", type=int, default=0,
                        help="units per batch of (c); 0 = as many as fit (--reps-per-batch: its former name)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    return parser.parse_args()


def pick_model(spec: str | None) -> str:
    """The real Gemma-3-4b-it where its config loads (weights are then loadable too), else the random one."""
    if spec:
        return spec
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained("google/gemma-3-4b-it")
        return "google/gemma-3-4b-it"
    except Exception:  # no network, no token, no licence: same compute with random weights
        return "random:gemma-3-4b-it"


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn) -> float:
    sync()
    started = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - started


def naive_unit(worker: ModelWorker, unit: Unit, inputs: dict) -> tuple[float, float]:
    """The original loop for one unit: restore + degrade, then eager `generate` with a dynamic cache."""
    cfg, model, baseline = worker.config, worker.loaded.model, worker.weights.baseline
    lesion = timed(lambda: (baseline.restore(),
                            baseline.degrade(cfg.degradation_method, unit.level,
                                             repetition_seed(cfg.seed, unit.repeat_index))))
    generation = timed(lambda: model.generate(**inputs, do_sample=True, temperature=cfg.temperature, top_k=cfg.top_k,
                                              top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                              min_new_tokens=cfg.max_new_tokens))
    return lesion, generation


def naive_path(worker: ModelWorker, units: list[Unit], steps: int, limit: float) -> dict:
    """(a) on `units`, with the attention the original pipeline had (transformers' SDPA)."""
    model, chosen = worker.loaded.model, worker.loaded.model.config._attn_implementation
    model.set_attn_implementation("sdpa")
    try:
        inputs = encode(worker.loaded, [p.text for p in worker.config.prompts], worker.prompts.image)
        with worker.fusion.paused():  # one product per projection, as the original pipeline ran them
            timings = [naive_unit(worker, unit, inputs) for unit in units]
    finally:
        model.set_attn_implementation(chosen)
    return summarize("naive generate (dynamic cache, eager)", timings, [len(worker.config.prompts)] * len(units), steps,
                     limit)


def fast_batch(worker: ModelWorker, units: list[Unit]) -> tuple[float, float]:
    """The ModelActor path for one batch of units (records built and dropped): lesion, generation seconds."""
    worker.fit_stacks(len(units))  # allocated once, on the first (largest) batch, as in ModelWorker.run_units
    lesion = timed(lambda: worker.lesion(units))
    generation = timed(lambda: worker.generate_units(units, lambda records: None))
    return lesion, generation


def batches(worker: ModelWorker, units: list[Unit]) -> list[list[Unit]]:
    """The units as the driver hands them to this worker alone: at most `worker.max_units`, equally full."""
    queue, out = deque(units), []
    size = batch_sizes(len(units), [worker.max_units])[0]
    while queue:
        out.append(take_batch(queue, size))
    return out


def time_path(name: str, worker: ModelWorker, units: list[Unit], steps: int, limit_at) -> dict:
    """Compile on the first batch (not timed as generation), then time every batch of `units`."""
    print(f"timing {name}: {len(units)} units, at most {worker.max_units} per batch", file=sys.stderr, flush=True)
    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
    groups = batches(worker, units)
    first = timed(lambda: fast_batch(worker, groups[0]))
    timings = [fast_batch(worker, group) for group in groups]
    rows = worker.prompt_batch_size * worker.units_per_batch
    # the limit of the batch shape decoded (padding blocks of a short last batch included)
    result = summarize(name, timings, [len(g) * worker.prompt_batch_size for g in groups], steps, limit_at(rows))
    return {**result, "reps_per_batch": worker.units_per_batch, "rows_per_batch": rows,
            "compile_and_first_batch_s": round(first, 1),
            "copies_per_rep_gib": round(worker.weights.baseline.nbytes / 2**30, 3) if worker.weights.stacks else 0.0,
            "peak_memory_gib": peak_gib()}


def peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def summarize(name: str, timings: list[tuple[float, float]], rows: list[int], steps: int, limit: float) -> dict:
    """`rows[i]`: sequences generated by timing i (prompts x repetitions)."""
    lesion = sum(t[0] for t in timings) / len(timings)
    generation = sum(t[1] for t in timings)
    tokens_per_s = sum(rows) * steps / generation
    return {"path": name, "batches": len(timings), "tokens_per_s": round(tokens_per_s, 1),
            "ms_per_step": round(1e3 * generation / (steps * len(timings)), 2),
            "restore_degrade_s": round(lesion, 3), "generation_s": round(generation, 1),
            "fraction_of_bandwidth_limit": round(tokens_per_s / limit, 3)}


def bandwidth_limit(worker: ModelWorker, rows: int, sequence: int) -> tuple[float, str, float]:
    """tokens/s at `rows` rows if every decode step only read the language-model weights (each repetition's
    copies of a rep-batched group included) and the mean KV cache."""
    model = worker.loaded.model
    weights = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if not is_vision(n))
    # each unit's copies of the group (none per-unit)
    weights += worker.weights.baseline.nbytes * (worker.units_per_batch - 1)
    kv = memory.kv_bytes_per_token(model.config, model.dtype.itemsize) * rows * sequence / 2
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (smoke test only)"
    bandwidth = memory.datasheet_bandwidth(name)
    return rows / ((weights + kv) / bandwidth), name, bandwidth


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)  # what follows -- is the launch's (its own --sweep)
    if "--sweep" in argv[:split]:  # whole launches: scripts/benchmark_sweep.py takes the other arguments
        from scripts.benchmark_sweep import main as sweep_main

        sys.exit(sweep_main([a for a in argv[:split] if a != "--sweep"] + argv[split:]))
    args = parse_args()
    spec = pick_model(args.model)
    config = apply_overrides(get_config("dreams_it"), [
        f"model_name={spec}", f"param_group_name={args.group}", f"degradation_method={args.method}",
        f"max_new_tokens={args.max_new_tokens}", "min_deg=0", "max_deg=0.5", "units_per_batch=1"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    worker = ModelWorker(config, device, "benchmark", ignore_eos=True, attention=args.attention,
                         compile_mode=args.compile_mode)
    load_s = timed(worker.load)
    worker.keep_steps_in(use_model_compile_cache(worker.loaded).directory)  # the launcher's keyed caches and steps
    units = [Unit(level, r, tuple(range(len(config.prompts)))) for level in args.levels for r in range(args.reps)]
    sequence = bucket(worker.prompts.length) + config.max_new_tokens
    limit, gpu, bandwidth = bandwidth_limit(worker, worker.prompt_batch_size, sequence)
    steps = config.max_new_tokens
    report = {"gpu": gpu, "model": spec, "dtype": str(worker.loaded.model.dtype),
              "prompts_per_batch": worker.prompt_batch_size,
              "attention": worker.loaded.model.config._attn_implementation, "compile_mode": args.compile_mode,
              "prompt_length": worker.prompts.length, "new_tokens": steps, "load_s": round(load_s, 1),
              "bandwidth_limit_tokens_per_s": round(limit), "datasheet_bandwidth": bandwidth,
              "workload": f"{args.group} {args.method}, levels {args.levels} x {args.reps} repetitions"}
    results = report["results"] = {}

    def save() -> None:  # after every path, so a run cut short keeps what it measured
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))

    if not args.skip_naive:
        results["naive"] = naive_path(worker, units[: args.naive_units], steps, limit)
        save()
    if args.naive_only:
        print(json.dumps(report, indent=1))
        return

    def limit_at(rows: int) -> float:
        return bandwidth_limit(worker, rows, sequence)[0]

    if not args.skip_per_unit:
        results["per_unit"] = time_path("ModelActor path, one repetition per batch", worker, units, steps, limit_at)
        save()
    worker.prepare(config.replace(units_per_batch=args.units_per_batch))
    results["rep_batched"] = rep = time_path("ModelActor path, rep-batched", worker, units, steps, limit_at)
    save()
    # the dry run's arithmetic at the shapes measured: one unit, and the rep-batched batch with its copies
    prefill = bucket(worker.prompts.length)
    estimate = memory.estimate(worker.loaded.model.config, worker.loaded.model.dtype, worker.prompt_batch_size,
                               sequence, prefill)
    report["dry_run_estimate_gib_one_rep"] = round(estimate.total / 2**30, 2)
    batched = memory.batch_bytes(worker.loaded.model.config, worker.loaded.model.dtype, rep["reps_per_batch"],
                                 sequence, worker.prompt_batch_size, worker.weights.baseline.nbytes, prefill)
    rep["dry_run_estimate_gib"] = round(batched / 2**30, 2)
    for base in ("naive", "per_unit"):
        if base in results:
            rep[f"speedup_over_{base}"] = round(rep["tokens_per_s"] / results[base]["tokens_per_s"], 1)
    if "naive" in results and "per_unit" in results:
        results["per_unit"]["speedup_over_naive"] = round(results["per_unit"]["tokens_per_s"]
                                                          / results["naive"]["tokens_per_s"], 1)
    if args.full:
        full = [Unit(level, r, tuple(range(len(config.prompts))))
                for level in config.levels for r in range(config.n_rep)]
        results["full_dreams_it"] = time_path(f"full dreams_it, {len(full)} units, rep-batched", worker, full, steps,
                                              limit_at)
        save()
    for group in args.also:
        worker.prepare(config.replace(param_group_name=group, units_per_batch=args.units_per_batch))
        units_r = [Unit(args.levels[0], r, tuple(range(len(config.prompts)))) for r in range(config.n_rep)]
        results[f"rep_batched_{group}"] = time_path(f"{group}, rep-batched, {len(units_r)} repetitions", worker,
                                                    units_r, steps, limit_at)
        save()
    print(json.dumps(report, indent=1))
    save()


if __name__ == "__main__":
    main()
