"""Where a decode step's time goes on the GPU: compiled step, sampling, loop overhead, top kernels.

    TORCH_LOGS=perf_hints,graph_breaks python scripts/profile_decode.py [--model random:gemma-3-4b-it]
    python scripts/profile_decode.py --group attn_only --units-per-batch 10   # a rep-batched step (380 rows)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs.experiments import apply_overrides, get_config  # noqa: E402
from degrader.decoding.compile_cache import use_model_compile_cache  # noqa: E402
from degrader.decoding.generation import generate  # noqa: E402
from degrader.run.plan import Unit  # noqa: E402
from degrader.run.worker import ModelWorker  # noqa: E402


def step_time(fn, repeats: int = 50) -> float:
    """Median milliseconds of fn() between CUDA syncs."""
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - started))
    return sorted(times)[len(times) // 2]


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="random:gemma-3-4b-it")
    parser.add_argument("--max-new-tokens", type=int, default=350)
    parser.add_argument("--group", default="mlp_only")
    parser.add_argument("--units-per-batch", "--reps-per-batch", dest="units_per_batch", type=int, default=1,
                        help="units decoded per batch (--reps-per-batch: its former name)")
    args = parser.parse_args()
    config = apply_overrides(get_config("dreams_it"), [f"model_name={args.model}", f"param_group_name={args.group}",
                                                       f"max_new_tokens={args.max_new_tokens}",
                                                       f"units_per_batch={args.units_per_batch}"])
    worker = ModelWorker(config, torch.device("cuda"), "profile", ignore_eos=True)
    worker.load()
    worker.keep_steps_in(use_model_compile_cache(worker.loaded).directory)  # the launcher's keyed caches and steps
    units = [Unit(config.levels[0], r, tuple(range(len(config.prompts)))) for r in range(worker.max_units)]
    worker.fit_stacks(len(units))
    run_units = lambda: worker.generate_units(units, lambda records: None)  # noqa: E731
    started = time.perf_counter()
    run_units()
    print(f"first unit (compile) {time.perf_counter() - started:.1f}s; "
          f"attention {worker.loaded.model.config._attn_implementation}")
    decoder = worker.decoder_for(worker.prompt_batch_size)
    rows = decoder.batch_size * decoder.units
    token = torch.zeros(rows, 1, dtype=torch.long, device="cuda")
    position = torch.full((rows, 1), 30, device="cuda")
    cache_position = torch.full((1,), decoder.prompt_length, device="cuda")
    mask = torch.ones(rows, decoder.prompt_length + config.max_new_tokens, dtype=torch.long, device="cuda")
    seeds = torch.arange(rows, device="cuda")
    step = torch.tensor(1, device="cuda")
    def rewind():  # keep the static cache at the same length, so repeated steps stay in bounds
        for layer in decoder.cache.layers:
            layer.cumulative_length.fill_(decoder.prompt_length)

    rewind_ms = step_time(rewind)
    compiled = step_time(lambda: (rewind(), decoder.step_fn(token, position, cache_position, mask, seeds, step)))
    eager = step_time(lambda: (rewind(), decoder._step(token, position, cache_position, mask, seeds, step)), repeats=10)
    unit_ms = step_time(run_units, repeats=3)
    texts = [p.text for p in config.prompts[: decoder.batch_size]]
    fixed_ms = step_time(lambda: generate(worker.loaded, texts, worker.params, [0] * (len(texts) * decoder.units),
                                          worker.prompts.image, decoder, units=decoder.units, steps=1), repeats=5)
    print(f"rows {rows}: compiled step {compiled:.2f} ms, eager step {eager:.2f} ms (each with a "
          f"{rewind_ms:.2f} ms cache rewind), "
          f"whole unit {unit_ms:.0f} ms = {unit_ms / config.max_new_tokens:.2f} ms per new token, of which "
          f"{fixed_ms:.0f} ms outside the decode steps (encoding, prefill, first token, results)")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA,
                                            torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            rewind()
            decoder.step_fn(token, position, cache_position, mask, seeds, step)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=45, max_name_column_width=90))


if __name__ == "__main__":
    main()
