"""Baseline snapshot and restore of exactly the tensors a group degrades.

The snapshot is a CPU copy (pinned when the model is on CUDA, so restores are fast async
copies), taken once after loading; `restore()` writes it back before every repetition. After
any sequence of degrade / restore the model is bitwise identical to the loaded one.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

from degrader.groups import Target
from degrader.methods import get_method
from degrader.quantized import apply_4bit, is_4bit, state_tensors
from degrader.seeding import generator_for


class Baseline:
    """CPU copies of a group's tensors, restorable into the live model."""

    def __init__(self, targets: Sequence[Target]):
        self.targets = list(targets)
        self.live = [tensor for target in self.targets for tensor in _stored(target.tensor)]
        self.saved = [_cpu_copy(tensor) for tensor in self.live]

    @property
    def nbytes(self) -> int:
        """Bytes held on the CPU by the snapshot."""
        return sum(t.numel() * t.element_size() for t in self.saved)

    @torch.no_grad()
    def restore(self) -> None:
        """Write the snapshot back into the model (in place, so compiled graphs stay valid)."""
        for live, saved in zip(self.live, self.saved, strict=True):
            live.copy_(saved, non_blocking=True)
        if any(t.is_cuda for t in self.live):
            torch.cuda.current_stream().synchronize()

    @torch.no_grad()
    def degrade(self, method_name: str, level: float, seed: int) -> None:
        """Apply `method_name` at `level` to every target, each with its own generator.

        The generator of a tensor is seeded from (seed, tensor name): `seed` is the config's
        base seed + the repetition index, so weights are a pure function of those three.
        """
        method = get_method(method_name)
        method.validate(level)
        for target in self.targets:
            degrade_tensor(target.tensor, target.name, method, level, seed)

    @contextmanager
    def degraded(self, method_name: str, level: float, seed: int) -> Iterator[None]:
        """Restore, degrade, run the block, and restore again in `finally`."""
        self.restore()
        try:
            self.degrade(method_name, level, seed)
            yield
        finally:
            self.restore()


def degrade_tensor(tensor: torch.Tensor, name: str, method, level: float, seed: int) -> None:
    """`method` at `level` on `tensor` in place, with the generator of (seed, name): every lesion's one step.

    A 4-bit tensor is degraded in its dequantized values and quantized again."""
    generator = generator_for(tensor.device, seed, name)
    if is_4bit(tensor):
        apply_4bit(tensor, lambda weights: method.apply(weights, level, generator))
    else:
        method.apply(tensor, level, generator)


def _stored(tensor: torch.Tensor) -> list[torch.Tensor]:
    # a 4-bit weight is its packed bytes plus its quantization state; anything else is itself
    return state_tensors(tensor) if is_4bit(tensor) else [tensor]


def _cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    copy = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=tensor.is_cuda)
    copy.copy_(tensor.detach())
    return copy
