"""Loading result files, and the overview table: per (variant, level), each metric's mean over repetitions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.statistics import (
    VARIANT,
    damage_coordinate,
    long_values,
    repetition_means,
)
from degrader.run.keys import record_key
from degrader.run.store import journal_path, read_records


def load(paths: list[Path]) -> tuple[list[dict], list[str]]:
    """Every record of the files (journals of runs in progress included, duplicates dropped), and notes."""
    records, notes, seen = [], [], set()
    for path in paths:
        if journal_path(path).exists():
            notes.append(f"{path} is partial: its run is in progress or was interrupted")
        for record in read_records(path):
            if record_key(record) not in seen:
                seen.add(record_key(record))
                records.append(record)
    return records, notes


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, level): n records, n repetitions, and each metric's mean of repetition means.

    A metric is averaged over the prompts of a repetition first (the repetition is the unit), then over
    repetitions; a metric that applies to none of a level's records is empty there.
    """
    design = [*VARIANT, "level_value"]
    frame = frame.reindex(columns=[*frame.columns, *(c for c in VARIANT if c not in frame)]).fillna(
        {column: "" for column in VARIANT})
    counts = frame.groupby(design, sort=False, dropna=False).agg(n=("key", "size"),
                                                                  repetitions=("repeat_index", "nunique"))
    reps = repetition_means(long_values(frame))
    means = reps.groupby([*design, "metric"], sort=False, dropna=False)["mean"].mean().unstack("metric")
    order = [name for name in frame.columns if name in means.columns]
    table = counts.join(means[order]).reset_index()
    return table.sort_values([*VARIANT, "level_value"], key=_damage_key(table), kind="stable").reset_index(drop=True)


def _damage_key(table: pd.DataFrame):
    """Sort key: the design fields as text, the level by its damage (uni_quant's control first, then N falling)."""
    def key(column: pd.Series) -> pd.Series:
        if column.name != "level_value":
            return column.astype(str)
        return pd.Series([damage_coordinate(m, lv) for m, lv in zip(table["degradation_method"], column, strict=True)],
                         index=column.index)

    return key
