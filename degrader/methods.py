"""Degradation methods: a registry of in-place lesions applied to one weight tensor.

Each method is `apply(weight, level, generator)`; `weight` is a parameter or a view of one and
is changed in place. Draws come only from `generator`, in float32 with the shape of `weight`, and do
not depend on the level: within one repetition a larger sigma rescales the same noise and a larger p
selects a superset of the weights (a paired design across levels). The shuffles and `permute` draw
their permutation after the selection, so the permutation itself changes with the number selected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

ApplyFn = Callable[[torch.Tensor, float, torch.Generator], None]
ValidateFn = Callable[[float], None]


@dataclass(frozen=True)
class Method:
    """One registered degradation method."""

    name: str
    apply: ApplyFn
    validate: ValidateFn
    schedule: str  # "linear" or "geometric": how levels between min_deg and max_deg are spaced
    level_name: str  # what a level is, for messages and docs


def _validate_sigma(level: float) -> None:
    if not (math.isfinite(level) and level >= 0):
        raise ValueError(f"mult_gauss level (sigma) must be a finite number >= 0, got {level!r}")


def _probability(name: str) -> ValidateFn:
    def validate(level: float) -> None:
        if not (math.isfinite(level) and 0 <= level <= 1):
            raise ValueError(f"{name} level (p) must be a probability in [0, 1], got {level!r}")

    return validate


def _validate_n_values(level: float) -> None:
    if not (float(level).is_integer() and (level >= 2 or level == 0)):
        raise ValueError(f"uni_quant level (number of values N) must be an integer >= 2, or 0 for no "
                         f"quantisation (the control), got {level!r}")


def mult_gauss(weight: torch.Tensor, level: float, generator: torch.Generator) -> None:
    """W <- W * e, e = 1 + sigma * z, z ~ N(0, 1)."""
    if level == 0:
        return
    noise = torch.randn(weight.shape, generator=generator, device=weight.device, dtype=torch.float32)
    weight.copy_(weight.float() * noise.mul_(level).add_(1.0))


def ablation(weight: torch.Tensor, level: float, generator: torch.Generator) -> None:
    """W_ij <- 0 where u_ij < p, u ~ U[0, 1)."""
    if level == 0:
        return
    draws = torch.rand(weight.shape, generator=generator, device=weight.device, dtype=torch.float32)
    weight.masked_fill_(draws < level, 0)


def uni_quant(weight: torch.Tensor, level: float, generator: torch.Generator) -> None:
    """W <- lo + round((W - lo) / step) * step, step = (hi - lo) / (N - 1): N evenly spaced values; N = 0: W."""
    del generator  # deterministic: the same for every repetition
    if level == 0:  # the control level: unquantised weights
        return
    values = weight.float()
    low, high = values.min(), values.max()
    step = (high - low) / (int(level) - 1)
    if step == 0:
        return
    weight.copy_(low + torch.round((values - low) / step) * step)


def _selected(weight: torch.Tensor, level: float, generator: torch.Generator, size: int) -> torch.Tensor:
    # u ~ U[0, 1) per item, drawn whatever the level: a larger p selects a superset
    return torch.rand(size, generator=generator, device=weight.device, dtype=torch.float32) < level


def mean_out(weight: torch.Tensor, level: float, generator: torch.Generator) -> None:
    """W_ij <- mean(W) where u_ij < p, u ~ U[0, 1)."""
    if level == 0:
        return
    chosen = _selected(weight, level, generator, weight.numel()).view(weight.shape)
    weight.masked_fill_(chosen, weight.float().mean().item())


def _permute_selected(values: torch.Tensor, chosen: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """values with the chosen entries (along dim 0) permuted among themselves."""
    index = chosen.nonzero().squeeze(-1)
    order = torch.randperm(index.numel(), generator=generator, device=values.device)
    shuffled = values.clone()
    shuffled[index] = values[index[order]]
    return shuffled


def shuffle_rows(weight: torch.Tensor, level: float, generator: torch.Generator) -> None:
    """A fraction p of the rows (u_i < p) permuted among themselves."""
    if level == 0:
        return
    weight.copy_(_permute_selected(weight, _selected(weight, level, generator, weight.shape[0]), generator))


def shuffle_cols(weight: torch.Tensor, level: float, generator: torch.Generator) -> None:
    """A fraction p of the columns (dim 1, u_j < p) permuted among themselves."""
    if level == 0:
        return
    chosen = _selected(weight, level, generator, weight.shape[1])
    weight.copy_(_permute_selected(weight.transpose(0, 1), chosen, generator).transpose(0, 1))


def permute(weight: torch.Tensor, level: float, generator: torch.Generator) -> None:
    """A fraction p of all elements (u_ij < p) permuted among themselves."""
    if level == 0:
        return
    flat = weight.reshape(-1)
    weight.copy_(_permute_selected(flat, _selected(weight, level, generator, flat.numel()),
                                   generator).view(weight.shape))


METHODS: dict[str, Method] = {
    "mult_gauss": Method("mult_gauss", mult_gauss, _validate_sigma, "linear", "sigma"),
    "ablation": Method("ablation", ablation, _probability("ablation"), "linear", "p"),
    "uni_quant": Method("uni_quant", uni_quant, _validate_n_values, "geometric", "N values"),
    "mean_out": Method("mean_out", mean_out, _probability("mean_out"), "linear", "p"),
    "shuffle_rows": Method("shuffle_rows", shuffle_rows, _probability("shuffle_rows"), "linear", "p"),
    "shuffle_cols": Method("shuffle_cols", shuffle_cols, _probability("shuffle_cols"), "linear", "p"),
    "permute": Method("permute", permute, _probability("permute"), "linear", "p"),
}


def get_method(name: str) -> Method:
    """The registered method `name`; an unknown name raises and lists the valid ones."""
    if name not in METHODS:
        raise ValueError(f"unknown degradation method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]
