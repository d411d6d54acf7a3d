"""The dry run's memory estimate of picture rows against the measured peak: one rep-batched batch, one GPU.

    python scripts/picture_memory.py --units 6
    python scripts/picture_memory.py --units 14 --model random:gemma-3-4b-it --max-new-tokens 64

Loads the model in a `ModelWorker` (an actor's code) for `cookie_theft_it` with `attn_only` rep-batched, decodes
one batch of `--units` units (each the task's prompts with its picture) with eager steps (no compile, so no
CUDA-graph pools in the peak), and prints one JSON object: the estimate (`degrader/memory.py`, as `--dry-run`
computes it, the units' copies of the group included), its parts, and `torch.cuda.max_memory_allocated`.
docs/performance.md ("Memory cost of a unit") and tests/degrader/test_memory.py hold the H100 figures.
On a CPU it runs (use `--model random:tiny-gemma3`) without a peak.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from configs.experiments import apply_overrides, get_config  # noqa: E402
from degrader import memory  # noqa: E402
from degrader.decoding.static_decode import bucket  # noqa: E402
from degrader.run.plan import Unit  # noqa: E402
from degrader.run.worker import ModelWorker  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=0, help="units per batch (0: as many as the plan fits)")
    parser.add_argument("--model", default="random:gemma-3-4b-it")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = apply_overrides(get_config("cookie_theft_it"), [
        f"model_name={args.model}", "param_group_name=attn_only", "degradation_method=mult_gauss", "min_deg=0",
        "max_deg=0.5", f"max_new_tokens={args.max_new_tokens}", f"units_per_batch={args.units}"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    worker = ModelWorker(config, device, "picture-memory", ignore_eos=True, compile_mode=None)
    worker.load()
    n_units = worker.max_units
    units = [Unit(level, r, tuple(range(worker.prompt_batch_size))) for level in config.levels
             for r in range(config.n_rep)][:n_units]
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    worker.fit_stacks(n_units)
    worker.lesion(units)
    reports = worker.generate_units(units, lambda records: None)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    model, prefill = worker.loaded.model, bucket(worker.prompts.length)
    rows = worker.prompt_batch_size * n_units
    sequence = prefill + config.max_new_tokens
    estimate = memory.estimate(model.config, model.dtype, rows, sequence, prefill, image=True)  # its parts
    total = memory.batch_bytes(model.config, model.dtype, n_units, sequence, worker.prompt_batch_size,
                               worker.weights.baseline.nbytes, prefill, image=True)
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "units": n_units,
              "rows": rows, "prompt_tokens": worker.prompts.length, "new_tokens": config.max_new_tokens,
              "estimate_gib": round(total / 2**30, 2),
              "parts_gib": {**{name: round(value / 2**30, 2) for name, value in vars(estimate).items()},
                            "copies": round((total - estimate.total) / 2**30, 2)},
              "peak_gib": round(peak, 2) if peak is not None else None,
              "records": sum(report.records for report in reports)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
