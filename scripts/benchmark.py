"""GPU benchmark: the original pipeline's naive loop against the ModelActor path, on one GPU.

    python scripts/benchmark.py            # 2 levels x 2 repetitions of mlp_only mult_gauss on dreams_it
    python scripts/benchmark.py --full     # and the full dreams_it (5 levels x 10 repetitions) on the fast path

Both paths generate the 38 dreams_it prompts with 350 new tokens forced. (a) is the original loop: per
unit restore, degrade, `generate` with a dynamic cache, eager. (b) is `ModelWorker`, the code each
ModelActor runs: static KV cache, compiled decode step, in-place restore and degrade. Uses the real
google/gemma-3-4b-it where it loads, else random:gemma-3-4b-it (the same compute), and says which.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.plan import Unit  # noqa: E402
from actors.worker import ModelWorker  # noqa: E402
from configs.experiments import apply_overrides, get_config  # noqa: E402
from degrader import memory  # noqa: E402
from degrader.generation import encode  # noqa: E402
from degrader.groups import is_vision  # noqa: E402
from degrader.static_decode import bucket  # noqa: E402

DATASHEET_BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12}  # bytes/s, HBM


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model spec (default: google/gemma-3-4b-it if it loads, else random:gemma-3-4b-it)")
    parser.add_argument("--group", default="mlp_only")
    parser.add_argument("--method", default="mult_gauss")
    parser.add_argument("--levels", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=350)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--attention", help="attention implementation of the fast path (e.g. eager, sdpa)")
    parser.add_argument("--compile-mode", default="reduce-overhead", help="torch.compile mode of the decode step")
    parser.add_argument("--full", action="store_true", help="also run the full dreams_it (5 levels x 10 reps)")
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
    cfg, model = worker.config, worker.loaded.model
    lesion = timed(lambda: (worker.baseline.restore(),
                            worker.baseline.degrade(cfg.degradation_method, unit.level, cfg.seed + unit.repeat_index)))
    generation = timed(lambda: model.generate(**inputs, do_sample=True, temperature=cfg.temperature, top_k=cfg.top_k,
                                              top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                              min_new_tokens=cfg.max_new_tokens))
    return lesion, generation


def fast_unit(worker: ModelWorker, unit: Unit) -> tuple[float, float]:
    """The ModelActor path for one unit (records built and dropped)."""
    cfg = worker.config
    lesion = timed(lambda: (worker.baseline.restore(),
                            worker.baseline.degrade(cfg.degradation_method, unit.level, cfg.seed + unit.repeat_index)))
    generation = timed(lambda: worker.generate_unit(unit, {}, lambda records: None))
    return lesion, generation


def summarize(name: str, timings: list[tuple[float, float]], rows: int, steps: int, limit: float) -> dict:
    lesion = sum(t[0] for t in timings) / len(timings)
    generation = sum(t[1] for t in timings)
    tokens_per_s = rows * steps * len(timings) / generation
    return {"path": name, "units": len(timings), "tokens_per_s": round(tokens_per_s, 1),
            "ms_per_step": round(1e3 * generation / (steps * len(timings)), 2),
            "restore_degrade_s": round(lesion, 3), "generation_s": round(generation, 1),
            "fraction_of_bandwidth_limit": round(tokens_per_s / limit, 3)}


def bandwidth_limit(worker: ModelWorker, rows: int, sequence: int) -> tuple[float, str, float]:
    """tokens/s if every decode step only read the language-model weights and the mean KV cache."""
    model = worker.loaded.model
    weights = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if not is_vision(n))
    kv = memory.kv_bytes_per_token(model.config, model.dtype.itemsize) * rows * sequence / 2
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (smoke test only)"
    bandwidth = next((bw for key, bw in DATASHEET_BANDWIDTH.items() if key in name), 3.35e12)
    return rows / ((weights + kv) / bandwidth), name, bandwidth


def main() -> None:
    args = parse_args()
    spec = pick_model(args.model)
    config = apply_overrides(get_config("dreams_it"), [
        f"model_name={spec}", f"param_group_name={args.group}", f"degradation_method={args.method}",
        f"max_new_tokens={args.max_new_tokens}", "min_deg=0", "max_deg=0.5"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    worker = ModelWorker(config, device, "benchmark", ignore_eos=True, attention=args.attention,
                         compile_mode=args.compile_mode)
    load_s = timed(worker.load)
    rows = worker.sizer.size
    units = [Unit(level, r, tuple(range(len(config.prompts)))) for level in args.levels for r in range(args.reps)]
    sequence = bucket(worker.prompt_length) + config.max_new_tokens
    limit, gpu, bandwidth = bandwidth_limit(worker, rows, sequence)
    report = {"gpu": gpu, "model": spec, "dtype": str(worker.loaded.model.dtype), "batch": rows,
              "attention": worker.loaded.model.config._attn_implementation, "compile_mode": args.compile_mode,
              "prompt_length": worker.prompt_length, "new_tokens": config.max_new_tokens, "load_s": round(load_s, 1),
              "bandwidth_limit_tokens_per_s": round(limit), "datasheet_bandwidth": bandwidth}
    results = []
    if not args.skip_naive:
        inputs = encode(worker.loaded, [p.text for p in config.prompts], worker.image)
        results.append(summarize("naive generate (dynamic cache, eager)", [naive_unit(worker, u, inputs) for u in units],
                                 len(config.prompts), config.max_new_tokens, limit))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    report["compile_and_first_unit_s"] = round(timed(lambda: fast_unit(worker, units[0])), 1)
    results.append(summarize("ModelActor path (static cache, compiled)", [fast_unit(worker, u) for u in units], rows,
                             config.max_new_tokens, limit))
    report["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
    estimate = memory.estimate(worker.loaded.model.config, worker.loaded.model.dtype, rows, sequence)
    report["dry_run_estimate_gib"] = round(estimate.total / 2**30, 2)
    if len(results) == 2:
        report["speedup"] = round(results[1]["tokens_per_s"] / results[0]["tokens_per_s"], 1)
    if args.full:
        full = [Unit(level, r, tuple(range(len(config.prompts)))) for level in config.levels for r in range(config.n_rep)]
        results.append(summarize(f"full dreams_it, {len(full)} units", [fast_unit(worker, u) for u in full], rows,
                                 config.max_new_tokens, limit))
    report["results"] = results
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
