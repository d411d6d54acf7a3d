"""The registry of per-record metrics: every metric the summary, the statistics and the report use.

A metric is one function of one record (its output text and fields) with a name, a range, a
direction and a reference, like the lesion methods of degrader/methods.py. `None` means "does not
apply to this record" (an IQ item without a key, a dream for a Cookie Theft metric), never a score.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

Compute = Callable[[dict], "float | None"]


@dataclass(frozen=True)
class Metric:
    """One per-record metric."""

    name: str
    compute: Compute  # record -> value, None where the metric does not apply
    low: float  # smallest possible value
    high: float | None  # largest possible value (None = unbounded)
    higher_is_healthier: bool | None  # None: no expected direction (the test is two-sided)
    reference: str  # where the metric comes from (paper, thesis table, library)
    tasks: tuple[str, ...] = ()  # prompt_group values it applies to; () = every task
    family: str = "text"  # "text", "iq", "picture", "discourse", "judge"
    version: int = 1  # bump when the definition changes: cached metric tables recompute it

    def applies_to(self, record: dict) -> bool:
        """Whether the record's task is one this metric scores."""
        return not self.tasks or record.get("prompt_group") in self.tasks


METRICS: dict[str, Metric] = {}
# The modules that register the project's metrics (each registers its own on import); spaCy and the
# embedding model load on a metric's first use, not on import.
BUILTIN_MODULES = ("analysis.metrics", "analysis.answers", "analysis.content_units", "analysis.discourse")


def register(metric: Metric) -> Metric:
    """Add a metric; a second metric of the same name is an error."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is registered twice")
    METRICS[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    """The metric called `name`; an unknown name raises and lists the valid ones."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(sorted(METRICS))}")
    return METRICS[name]


def load_builtin() -> dict[str, Metric]:
    """The metrics computed from a record alone, after importing every module of BUILTIN_MODULES.

    Judged metrics (family "judge", registered by analysis.judge) are left out: their values come from
    the judge's store, not from the record."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return {name: metric for name, metric in METRICS.items() if metric.family != "judge"}
