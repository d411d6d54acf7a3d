"""Degradation methods: a registry of in-place lesions applied to one weight tensor.

Each method is `apply(weight, level, generator)`; `weight` is a parameter or a view of one and
is changed in place. Draws come only from `generator` and are made in float32 with the shape of
`weight`, so they do not depend on the level: within one repetition a larger sigma rescales the
same noise and a larger p masks a superset of the weights (a paired design across levels).
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
    uses_randomness: bool


def _validate_sigma(level: float) -> None:
    if not (math.isfinite(level) and level >= 0):
        raise ValueError(f"mult_gauss level (sigma) must be a finite number >= 0, got {level!r}")


def _validate_probability(level: float) -> None:
    if not (math.isfinite(level) and 0 <= level <= 1):
        raise ValueError(f"ablation level (p) must be a probability in [0, 1], got {level!r}")


def _validate_n_values(level: float) -> None:
    if not (float(level).is_integer() and level >= 2):
        raise ValueError(f"uni_quant level (number of values N) must be an integer >= 2, got {level!r}")


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
    """W <- lo + round((W - lo) / step) * step, step = (hi - lo) / (N - 1): N evenly spaced values."""
    del generator  # deterministic: the same for every repetition
    values = weight.float()
    low, high = values.min(), values.max()
    step = (high - low) / (int(level) - 1)
    if step == 0:
        return
    weight.copy_(low + torch.round((values - low) / step) * step)


METHODS: dict[str, Method] = {
    "mult_gauss": Method("mult_gauss", mult_gauss, _validate_sigma, "linear", "sigma", True),
    "ablation": Method("ablation", ablation, _validate_probability, "linear", "p", True),
    "uni_quant": Method("uni_quant", uni_quant, _validate_n_values, "geometric", "N values", False),
}


def get_method(name: str) -> Method:
    """The registered method `name`; an unknown name raises and lists the valid ones."""
    if name not in METHODS:
        raise ValueError(f"unknown degradation method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def validate_level(method_name: str, level: float) -> None:
    """Raise ValueError with a fix-it message when `level` is out of range for the method."""
    get_method(method_name).validate(level)
