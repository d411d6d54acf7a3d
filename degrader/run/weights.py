"""The state of the weights a variant degrades: the group's CPU baseline, the per-unit stacks, lesion and restore."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from degrader.baseline import Baseline
from degrader.decoding.rep_batch import UnitStacks, unsupported_reason
from degrader.groups import Target
from degrader.run.plan import Unit
from degrader.seeding import repetition_seed


class WeightState:
    """One model's degraded group: clean in its baseline, degraded live (one unit) or in per-unit stacks (several).

    `on_stacks_change(generation)` is called whenever stacks are installed or removed, before anything
    else is allocated: whatever was built against the previous modules (compiled decoders) can go at once.
    """

    def __init__(self, model: nn.Module, device: torch.device, on_stacks_change: Callable[[int], None]):
        self.model, self.device, self.on_stacks_change = model, device, on_stacks_change
        self.baseline: Baseline | None = None  # the group's clean tensors, on the CPU
        self.stacks: UnitStacks | None = None  # per-unit copies of the group while rep-batching
        self.generation = 0  # counts the installs and removals of stacks: which modules the model runs
        self.unsupported: str | None = None  # why the group cannot be rep-batched, read before any stacks

    @property
    def units_per_batch(self) -> int:
        """How many units the installed stacks decode per batch (1: the per-unit path)."""
        return self.stacks.units if self.stacks is not None else 1

    def switch(self, targets: Sequence[Target]) -> None:
        """Make `targets` the degraded group; the previous group is restored first, so the snapshot is clean."""
        self.drop()
        if self.baseline is not None:
            self.baseline.restore()
        self.baseline = Baseline(targets)
        self.unsupported = unsupported_reason(self.model, targets)  # installed stacks would hide the modules

    def keep(self, most_units: int) -> None:
        """Keep the group for the next variant: its baseline, and its stacks while they hold at most `most_units`.

        The live weights are restored (the per-unit path degrades them in place); the copies are made again
        from them at every lesion, so stacks kept from the last variant are as good as new ones, and what
        was built on them (compiled decoders) stays valid."""
        if self.units_per_batch > most_units:
            self.drop()
        self.baseline.restore()

    def holds(self, units: int) -> bool:
        """Whether the installed stacks serve batches of `units` units as they are (`fit` would change nothing)."""
        return units <= self.units_per_batch

    def fit(self, units: int) -> None:
        """Stacks for `units` units; kept when the installed ones hold as many or more (so 1 needs none).

        Out of memory while copying leaves no stacks installed."""
        if not self.holds(units):
            self.drop()
            self.baseline.restore()  # the copies' source: the per-unit path may have left the live weights degraded
            self._changed()  # what was built for the modules so far goes before the copies are allocated
            self.stacks = UnitStacks(self.model, self.baseline.targets, units)
            self.stacks.install()

    def drop(self) -> None:
        """Uninstall the stacks (if any) and free their copies."""
        if self.stacks is not None:
            self.stacks.uninstall()
            self.stacks = None
            self._changed()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _changed(self) -> None:
        self.generation += 1
        self.on_stacks_change(self.generation)

    def clean(self) -> None:
        """The undamaged model: no stacks, the baseline written back."""
        self.drop()
        self.baseline.restore()

    def lesion(self, method: str, base_seed: int, units: Sequence[Unit]) -> None:
        """Degrade for `units`: the live weights for one unit, or each unit's copies when rep-batching."""
        seeds = [repetition_seed(base_seed, unit.repeat_index) for unit in units]
        if self.stacks is None:
            self.baseline.restore()
            self.baseline.degrade(method, units[0].level, seeds[0])
        else:  # the live weights stay clean while the copies are installed: they are the copies' source
            self.stacks.degrade(method, [unit.level for unit in units], seeds)
