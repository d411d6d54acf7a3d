"""The per-record metrics table: one row per record (its key and design fields), one column per metric."""

from __future__ import annotations

import pandas as pd

from analysis.registry import load_builtin
from degrader.run.keys import record_key

# The record fields that place a value in the design: task, lesion variant, level, repetition, prompt.
DESIGN_FIELDS = ("model_name", "settings_hash", "prompt_group", "degradation_method", "param_group_name", "level_value",
                 "repeat_index", "prompt_id", "prompt_category")


def metrics_frame(records: list[dict], names: list[str] | None = None) -> pd.DataFrame:
    """One row per record: `key`, the design fields and each metric's value (NaN where it does not apply)."""
    registry = load_builtin()
    metrics = [registry[name] for name in (names or list(registry))]
    rows = []
    for record in records:
        row = {"key": record_key(record), **{field: record.get(field) for field in DESIGN_FIELDS}}
        for metric in metrics:
            row[metric.name] = metric.compute(record) if metric.applies_to(record) else None
        rows.append(row)
    return pd.DataFrame(rows, columns=["key", *DESIGN_FIELDS, *(m.name for m in metrics)])
