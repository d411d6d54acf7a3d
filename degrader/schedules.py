"""Level schedules: which degradation levels an experiment visits, from min_deg, max_deg, deg_steps."""

from __future__ import annotations

import logging

import numpy as np

from degrader.methods import get_method

logger = logging.getLogger(__name__)


def linear_levels(min_deg: float, max_deg: float, steps: int) -> list[float]:
    """levels = linspace(min, max, steps), with a level-0 control prepended when min > 0."""
    levels = [round(float(v), 10) for v in np.linspace(min_deg, max_deg, steps)]
    return levels if levels[0] == 0 else [0.0, *levels]


def geometric_levels(min_deg: float, max_deg: float, steps: int) -> list[int]:
    """levels = [0, *round(geomspace(max, min, steps))], de-duplicated, descending (fine to coarse) after the 0.

    Level 0 is the undamaged control (no quantisation), as linear schedules start at sigma or p = 0.
    """
    rounded = [int(round(v)) for v in np.geomspace(max_deg, min_deg, steps)]
    levels = sorted(set(rounded), reverse=True)
    if len(levels) < steps:
        logger.warning(
            "uni_quant schedule %s..%s in %d steps has only %d distinct integer levels after rounding: %s",
            max_deg, min_deg, steps, len(levels), levels,
        )
    return [0, *levels]


def levels_for(method_name: str, min_deg: float, max_deg: float, steps: int) -> list[float]:
    """The validated levels of `method_name` between min_deg and max_deg."""
    method = get_method(method_name)
    if steps < 1:
        raise ValueError(f"deg_steps must be >= 1, got {steps}")
    if min_deg > max_deg:
        raise ValueError(f"min_deg ({min_deg}) must be <= max_deg ({max_deg}); swap them")
    for bound in (min_deg, max_deg):
        method.validate(bound)
    if method.schedule == "geometric":
        if min_deg <= 0:  # geomspace cannot reach 0; the control level 0 comes with every schedule
            raise ValueError(f"{method_name} min_deg must be > 0 (the control level 0 is added anyway), got {min_deg}")
        return geometric_levels(min_deg, max_deg, steps)
    return linear_levels(min_deg, max_deg, steps)
