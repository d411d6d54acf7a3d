"""GPU check of 4-bit lesions: a model folder loaded with load_in_4bit, degraded and restored exactly.

    python scripts/check_4bit.py MODEL_FOLDER
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from degrader.baseline import Baseline  # noqa: E402
from degrader.groups import resolve_group  # noqa: E402
from degrader.models import load_model  # noqa: E402
from degrader.quantized import dequantized, is_4bit  # noqa: E402


def main() -> None:
    loaded = load_model(sys.argv[1], dtype="bfloat16", device="cuda", load_in_4bit=True)
    targets = resolve_group(loaded.model, "mlp_only")
    assert all(is_4bit(t.tensor) for t in targets), "mlp_only weights are not 4-bit"
    before = [t.tensor.data.clone() for t in targets]
    baseline = Baseline(targets)
    reference = dequantized(targets[0].tensor)
    baseline.degrade("mult_gauss", 0.5, 42)
    changed = (dequantized(targets[0].tensor) - reference).abs().mean().item()
    baseline.restore()
    exact = all(torch.equal(t.tensor.data, b) for t, b in zip(targets, before, strict=True))
    print(f"4-bit tensors {len(targets)}, GPU memory {torch.cuda.memory_allocated() / 2**30:.2f} GiB, "
          f"mean change after mult_gauss 0.5: {changed:.4f}, restore exact: {exact}")


if __name__ == "__main__":
    main()
