"""Rep-batched degradation: R units (a level and a repetition each) decoded as one batch.

The units of an experiment differ only in the degraded group. `UnitStacks` holds one copy of each
degraded tensor per unit ([R, out, in]; [R, vocab, hidden] for an embedding and the head tied
to it) and, while installed, swaps the modules that use them for versions that apply each row's own
copy. Rows are ordered by unit, with the same number of rows for each:
rows [r * n, (r + 1) * n) use copy r. Every other weight is shared, so a decode step reads it once
for all R units, whatever their levels.

Copy r is made exactly as the per-unit path makes its weights: the clean tensor, then the method at
the unit's level with the generator of (seed + repeat_index, tensor name). The copies are bitwise equal to what
`Baseline.degrade` writes into the live model for that unit.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn

from degrader.baseline import degrade_tensor
from degrader.decoding.fused import FusedRows
from degrader.groups import Target
from degrader.methods import get_method
from degrader.quantized import is_4bit


class UnitLinear(nn.Module):
    """A Linear whose weight differs per unit: y[r] = x[r] @ W[r]^T (+ b), one batched matmul."""

    def __init__(self, base: nn.Linear, weights: torch.Tensor):
        super().__init__()
        self.weights, self.bias = weights, base.bias
        self.weight = base.weight  # the clean shared weight, for code that asks a module its device or dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        units = self.weights.shape[0]
        if x.shape[0] % units:
            raise ValueError(f"a rep-batched layer needs {units} equal blocks of rows, got {x.shape[0]} rows")
        y = torch.matmul(x.reshape(units, -1, x.shape[-1]), self.weights.transpose(1, 2))
        y = y.reshape(*x.shape[:-1], y.shape[-1])
        return y if self.bias is None else y + self.bias


class UnitEmbedding(nn.Module):
    """An embedding table per unit (Gemma's scaled embedding keeps its scale)."""

    def __init__(self, base: nn.Embedding, weights: torch.Tensor):
        super().__init__()
        self.weights, self.weight = weights, base.weight  # `weight`: the clean one, for device and dtype lookups
        self.embed_scale = getattr(base, "embed_scale", None)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        units, vocab, hidden = self.weights.shape
        rep = torch.arange(units, device=input_ids.device).repeat_interleave(input_ids.shape[0] // units)
        offsets = (rep * vocab).view(-1, *([1] * (input_ids.dim() - 1)))
        out = nn.functional.embedding(input_ids + offsets, self.weights.view(units * vocab, hidden))
        return out if self.embed_scale is None else out * self.embed_scale.to(out.dtype)


@dataclass(frozen=True)
class _Swap:
    parent: nn.Module
    attribute: str
    original: nn.Module
    replacement: nn.Module


def unsupported_reason(model: nn.Module, targets: Sequence[Target]) -> str | None:
    """Why `targets` cannot be rep-batched in `model` (None when they can)."""
    for target in targets:
        if is_4bit(target.tensor):
            return f"{target.name} is a 4-bit tensor"
        # a slice taken from a weight keeps it as _base; a fused projection's parameter (degrader/decoding/fused.py) is
        # a Parameter made from a row block, with no _base: the module using it is found like any Linear's
        weight = target.tensor if target.tensor._base is None else target.tensor._base
        users = _users(model, weight)
        if not users:
            return f"no module uses {target.name} as its weight"
        for _, module in users:
            if type(module) not in (nn.Linear, FusedRows) and not isinstance(module, nn.Embedding):
                return f"{target.name} is used by a {type(module).__name__} (only Linear and Embedding are rep-batched)"
        if weight is not target.tensor:
            return f"{target.name} is a slice of a larger weight"
    return None


def _users(model: nn.Module, parameter: torch.Tensor) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in model.named_modules()
            if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight is parameter]


class UnitStacks:
    """`units` copies of each tensor of a group, degraded per unit, applied row block by row block."""

    def __init__(self, model: nn.Module, targets: Sequence[Target], units: int):
        reason = unsupported_reason(model, targets)
        if reason is not None:
            raise ValueError(f"this group cannot be rep-batched: {reason}; use units_per_batch=1")
        self.model, self.targets, self.units = model, list(targets), units
        with torch.no_grad():  # [units, *shape] per target, each a contiguous copy of the clean weight
            self.stacks = {t.name: t.tensor.detach().unsqueeze(0).repeat(units, *([1] * t.tensor.dim()))
                           for t in self.targets}
        self.swaps = [swap for t in self.targets for swap in self._swaps(t.tensor, self.stacks[t.name])]

    def _swaps(self, parameter: torch.Tensor, stack: torch.Tensor) -> list[_Swap]:
        swaps = []
        for name, module in _users(self.model, parameter):
            parent_name, _, attribute = name.rpartition(".")
            parent = self.model.get_submodule(parent_name) if parent_name else self.model
            kind = UnitEmbedding if isinstance(module, nn.Embedding) else UnitLinear
            swaps.append(_Swap(parent, attribute, module, kind(module, stack)))
        return swaps

    def weight(self, target: Target, rep: int) -> torch.Tensor:
        """Repetition `rep`'s copy of `target`."""
        return self.stacks[target.name][rep]

    @torch.no_grad()
    def degrade(self, method_name: str, levels: Sequence[float], seeds: Sequence[int]) -> None:
        """Copy r := clean weights + method at levels[r] with seeds[r]; copies past len(seeds) repeat the last.

        The live model's tensors must hold the clean (baseline) weights: they are the source.
        """
        if not 1 <= len(seeds) <= self.units or len(levels) != len(seeds):
            raise ValueError(f"{len(levels)} levels and {len(seeds)} seeds for stacks of {self.units}")
        method = get_method(method_name)
        for level in levels:
            method.validate(level)
        for rep, (level, seed) in enumerate(zip(levels, seeds, strict=True)):
            for target in self.targets:
                copy = self.weight(target, rep)
                copy.copy_(target.tensor)
                degrade_tensor(copy, target.name, method, level, seed)
        for stack in self.stacks.values():
            stack[len(seeds):].copy_(stack[len(seeds) - 1].expand_as(stack[len(seeds):]))

    def install(self) -> None:
        """Swap the rep-batched modules in (batches must then hold units x n rows, ordered by unit)."""
        for swap in self.swaps:
            setattr(swap.parent, swap.attribute, swap.replacement)

    def uninstall(self) -> None:
        """Put the model's own modules back."""
        for swap in self.swaps:
            setattr(swap.parent, swap.attribute, swap.original)

    @contextmanager
    def applied(self) -> Iterator["UnitStacks"]:
        """Installed for the block, uninstalled in `finally`."""
        self.install()
        try:
            yield self
        finally:
            self.uninstall()
