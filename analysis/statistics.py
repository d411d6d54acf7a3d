"""The thesis's statistics over the per-record metrics frame: intervals, effect sizes, thresholds, trends.

A *variant* is (model, task, method, parameter group); its control is its level 0 (sigma 0, p 0,
uni_quant's unquantised level). The repetition is the unit of replication: a metric is first averaged
over the prompts of one repetition, and every interval, effect size and trend test is over those
repetition means (prompts are nested in repetitions: they share one damaged model).

    repetition mean  m_r   = mean over the prompts of repetition r of the metric (NaN = not applicable, skipped)
    level mean             = mean_r m_r;   95 % interval = scipy.stats.bootstrap (BCa) over the m_r
    Cohen's d              = (mean_level - mean_control) / s_pooled,
                             s_pooled^2 = ((n1 - 1) s1^2 + (n2 - 1) s2^2) / (n1 + n2 - 2), s = SD(ddof=1)
    unhealthy effect e     = -d (higher is healthier), d (lower is healthier), |d| (no direction)
    threshold              = the damage where e first reaches 0.8, linear between the bracketing levels
    trend                  = one-sided Spearman rho of m_r against damage (two-sided without a direction)
"""

from __future__ import annotations

import logging
import math
import warnings
import zlib

import numpy as np
import pandas as pd
from scipy import stats

from analysis.registry import METRICS
from analysis.table import DESIGN_FIELDS
from degrader.methods import get_method

logger = logging.getLogger(__name__)

# settings_hash: records made with other generation settings (or by the original pipeline) are never pooled
VARIANT = ("model_name", "settings_hash", "prompt_group", "degradation_method", "param_group_name")
# a lesion across its tasks (each task keeps its own settings and its own control)
LESION = ("model_name", "degradation_method", "param_group_name")
CONTROL_LEVEL = 0.0
THRESHOLD_D = 0.8  # Cohen's "large" effect, the thesis's breaking point
MIN_REPETITIONS = 5  # below this, the report warns that intervals and effect sizes are unreliable
D_UNITS = ("repetition", "record")  # what enters Cohen's d: repetition means (default) or single records


def damage_coordinate(method: str, level: float) -> float:
    """Where `level` lies on `method`'s damage axis (larger = more damage).

    Linear schedules (sigma, p): the level itself. Geometric ones (uni_quant, N values): -log2(N),
    since damage grows as N falls and the levels are spaced in log2(N); its control 0 (no
    quantisation) is -inf, the least damage, and cannot be interpolated from.
    """
    if get_method(method).schedule == "linear":
        return float(level)
    return -math.inf if level == CONTROL_LEVEL else -math.log2(level)


def level_at(method: str, coordinate: float) -> float:
    """The level at a damage coordinate: the inverse of damage_coordinate."""
    if get_method(method).schedule == "linear":
        return coordinate
    return CONTROL_LEVEL if coordinate == -math.inf else 2.0 ** -coordinate


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns of a per-record frame: every column but the key and the design fields."""
    return [name for name in frame.columns if name not in ("key", *DESIGN_FIELDS)]


def direction(metric: str) -> bool | None:
    """higher_is_healthier of a registered metric; None (two-sided) for a column the registry lacks."""
    return METRICS[metric].higher_is_healthier if metric in METRICS else None


def long_values(frame: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per (record, metric) with a value: the design fields, `metric`, `value`, `damage`."""
    names = metrics or metric_columns(frame)
    frame = frame.reindex(columns=[*frame.columns, *(c for c in VARIANT if c not in frame)]).fillna(
        {column: "" for column in VARIANT})  # a record without a field still has a variant
    ids = [*VARIANT, "level_value", "repeat_index", "prompt_id"]
    long = frame.melt(id_vars=ids, value_vars=names, var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce").astype(float)  # booleans (right/wrong) too
    long = long.dropna(subset=["value"])
    pairs = long[["degradation_method", "level_value"]].drop_duplicates()
    damage = {(m, lv): damage_coordinate(m, lv) for m, lv in pairs.itertuples(index=False)}
    long["damage"] = [damage[pair] for pair in zip(long["degradation_method"], long["level_value"], strict=True)]
    return long.reset_index(drop=True)


def repetition_means(long: pd.DataFrame) -> pd.DataFrame:
    """The mean over prompts of each (variant, metric, level, repetition): the unit of replication."""
    keys = [*VARIANT, "metric", "level_value", "damage", "repeat_index"]
    return long.groupby(keys, sort=False, dropna=False)["value"].agg(["mean", "size"]).reset_index()


def cohens_d(sample: np.ndarray, control: np.ndarray) -> float:
    """(mean(sample) - mean(control)) / pooled SD (ddof 1 in each group); NaN below 3 values in all.

    Two constant groups that differ give +-inf (complete separation); equal ones give 0.
    """
    n1, n2 = len(sample), len(control)
    if n1 < 1 or n2 < 1 or n1 + n2 < 3:
        return math.nan
    ss = (n1 - 1) * np.var(sample, ddof=1 if n1 > 1 else 0) + (n2 - 1) * np.var(control, ddof=1 if n2 > 1 else 0)
    difference = float(np.mean(sample) - np.mean(control))
    pooled = math.sqrt(ss / (n1 + n2 - 2))
    if pooled == 0:
        return 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return difference / pooled


def bootstrap_interval(values: np.ndarray, rng: np.random.Generator, n_resamples: int) -> tuple[float, float, str]:
    """95 % BCa bootstrap interval of the mean of `values` (repetition means), and a note when there is none."""
    if len(values) < 2:
        return math.nan, math.nan, "fewer than 2 repetitions: no interval"
    if np.all(values == values[0]):
        return float(values[0]), float(values[0]), "all repetition means equal"
    with warnings.catch_warnings():  # BCa warns on near-degenerate samples; the interval is still reported
        warnings.simplefilter("ignore")
        result = stats.bootstrap((values,), np.mean, n_resamples=n_resamples, method="BCa", rng=rng)
    interval = result.confidence_interval
    return float(interval.low), float(interval.high), ""


def cell_rng(seed: int, cell: tuple) -> np.random.Generator:
    """A generator that is a pure function of (seed, cell): one cell's interval never depends on the others."""
    return np.random.default_rng([seed, zlib.crc32(repr(cell).encode())])


def level_stats(frame: pd.DataFrame, metrics: list[str] | None = None, *, seed: int = 0, n_resamples: int = 9999,
                d_unit: str = "repetition") -> pd.DataFrame:
    """Per (variant, metric, level): mean, 95 % interval, n records, n repetitions, Cohen's d against the control."""
    if d_unit not in D_UNITS:
        raise ValueError(f"unknown d_unit {d_unit!r}; available: {', '.join(D_UNITS)}")
    long = long_values(frame, metrics)
    reps = repetition_means(long)
    by_variant = dict(iter(long.groupby([*VARIANT, "metric"], sort=False, dropna=False))) if d_unit == "record" else {}
    rows = []
    for key, cells in reps.groupby([*VARIANT, "metric"], sort=False, dropna=False):
        rows += _variant_rows(key, cells, by_variant.get(key), seed, n_resamples)
    return pd.DataFrame(rows, columns=[*VARIANT, "metric", "level_value", "damage", "mean", "ci_low", "ci_high",
                                       "n_records", "n_repetitions", "d", "note"])


def _matches(long: pd.DataFrame, key: tuple) -> pd.Series:
    mask = pd.Series(True, index=long.index)
    for column, value in zip([*VARIANT, "metric"], key, strict=True):
        mask &= long[column] == value
    return mask


def _variant_rows(key: tuple, cells: pd.DataFrame, records: pd.DataFrame | None, seed: int,
                  n_resamples: int) -> list[dict]:
    """The rows of one (variant, metric), in damage order; d from repetition means, or records when given."""
    units = cells if records is None else records
    column = "mean" if records is None else "value"
    control = units.loc[units["level_value"] == CONTROL_LEVEL, column].to_numpy(float)
    rows = []
    for (level, damage), at_level in cells.groupby(["level_value", "damage"], sort=True):
        means = at_level["mean"].to_numpy(float)
        low, high, note = bootstrap_interval(means, cell_rng(seed, (*key, level)), n_resamples)
        sample = units.loc[units["level_value"] == level, column].to_numpy(float)
        d = cohens_d(sample, control) if len(control) else math.nan
        note = "; ".join(n for n in (note, "" if len(control) else "no control level") if n)
        rows.append(dict(zip([*VARIANT, "metric"], key, strict=True), level_value=level, damage=damage,
                         mean=float(means.mean()), ci_low=low, ci_high=high, n_records=int(at_level["size"].sum()),
                         n_repetitions=len(means), d=d, note=note))
    return sorted(rows, key=lambda row: row["damage"])


def unhealthy_effect(d: float, higher_is_healthier: bool | None) -> float:
    """d signed so that a positive value is a change toward the unhealthy side (|d| without a direction)."""
    if higher_is_healthier is None:
        return abs(d)
    return -d if higher_is_healthier else d


def threshold(method: str, levels: list[float], effects: list[float]) -> tuple[float, str]:
    """The level where the unhealthy effect first reaches THRESHOLD_D, and how it was found.

    `levels` in damage order, the control first (its effect is 0). Between the bracketing levels the
    damage coordinate is interpolated linearly (log2(N) for uni_quant); from uni_quant's control no
    interpolation is possible, so a crossing there is reported at the first quantised level; NaN
    effects (too few values) are skipped.
    """
    previous = None
    for level, effect in zip(levels, effects, strict=True):
        if math.isnan(effect):
            continue
        if effect >= THRESHOLD_D:  # no level below it to interpolate from: reached at or before this one
            return _interpolate(method, previous, (level, effect)) if previous else (level, "at or before this level")
        previous = (level, effect)
    return math.nan, "not reached"


def _interpolate(method: str, before: tuple[float, float], after: tuple[float, float]) -> tuple[float, str]:
    x0, x1 = damage_coordinate(method, before[0]), damage_coordinate(method, after[0])
    if math.isinf(x0) or not math.isfinite(before[1] + after[1]):  # uni_quant's control, or complete separation
        return after[0], "at or before this level"
    fraction = (THRESHOLD_D - before[1]) / (after[1] - before[1])
    return level_at(method, x0 + fraction * (x1 - x0)), "interpolated"


def spearman_trend(damage: np.ndarray, values: np.ndarray, higher_is_healthier: bool | None) -> tuple[float, float]:
    """Spearman rho of repetition means against damage, and its p-value, one-sided toward the unhealthy side."""
    alternative = {True: "less", False: "greater", None: "two-sided"}[higher_is_healthier]
    if len(values) < 3 or np.all(values == values[0]):
        return math.nan, math.nan
    ranks = stats.rankdata(damage)  # uni_quant's control sits at -inf: ranks keep the order without it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.spearmanr(ranks, values, alternative=alternative)
    return float(result.statistic), float(result.pvalue)


def trend_stats(frame: pd.DataFrame, levels: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Per (variant, metric): the d >= 0.8 threshold (level, how found) and the one-sided Spearman test."""
    reps = repetition_means(long_values(frame, metrics))
    rows = []
    for key, cells in levels.groupby([*VARIANT, "metric"], sort=False, dropna=False):
        higher = direction(key[-1])
        cells = cells.sort_values("damage")
        effects = [unhealthy_effect(d, higher) for d in cells["d"]]
        level, how = threshold(key[VARIANT.index("degradation_method")], list(cells["level_value"]), effects)
        if cells["d"].isna().all():
            how = "no effect size (no control or too few repetitions)"
        at = reps[_matches(reps, key)]
        rho, p = spearman_trend(at["damage"].to_numpy(float), at["mean"].to_numpy(float), higher)
        rows.append(dict(zip([*VARIANT, "metric"], key, strict=True), higher_is_healthier=higher, threshold=level,
                         threshold_found=how, spearman_rho=rho, spearman_p=p, n_repetition_means=len(at)))
    return pd.DataFrame(rows)


def variant_label(row: pd.Series | dict, with_model: bool = False, with_settings: bool = False) -> str:
    """A short column name for a variant: 'task method group', with the model and the settings hash where
    several are compared."""
    label = f"{row['prompt_group']} {row['degradation_method']} {row['param_group_name']}"
    label = f"{row['model_name']} {label}" if with_model else label
    return f"{label} [settings {row['settings_hash']}]" if with_settings else label


def several_settings(frame: pd.DataFrame) -> bool:
    """Whether some (model, task, method, group) holds records of more than one settings hash."""
    other = [field for field in VARIANT if field != "settings_hash"]
    return len(frame) > 0 and frame.groupby(other, dropna=False)["settings_hash"].nunique().max() > 1


def _labelled(trends: pd.DataFrame) -> pd.DataFrame:
    models, settings = trends["model_name"].nunique() > 1, several_settings(trends)
    return trends.assign(variant=[variant_label(row, models, settings) for _, row in trends.iterrows()])


def threshold_cell(row: pd.Series | dict) -> str:
    """The vulnerability table's cell: the level where d reaches 0.8, 'by L' when reached by level L, or why not."""
    if row["threshold_found"] == "interpolated":
        return f"{row['threshold']:.3g}"
    if row["threshold_found"] == "at or before this level":  # reached by the first level after the control
        return f"by {row['threshold']:.3g}"
    return row["threshold_found"]


def vulnerability_table(trends: pd.DataFrame) -> pd.DataFrame:
    """Metrics as rows, variants (with their level's unit) as columns, the d >= 0.8 threshold level in each cell."""
    labelled = _labelled(trends)
    units = [get_method(method).level_name for method in labelled["degradation_method"]]
    labelled = labelled.assign(variant=[f"{v} ({u})" for v, u in zip(labelled["variant"], units, strict=True)],
                               cell=[threshold_cell(row) for _, row in labelled.iterrows()])
    table = labelled.pivot_table(index="metric", columns="variant", values="cell", aggfunc="first", sort=False)
    return table.fillna("n/a").rename_axis(columns=None)


def spearman_table(trends: pd.DataFrame) -> pd.DataFrame:
    """Metrics as rows, variants as columns, the one-sided Spearman p-value in each cell."""
    table = _labelled(trends).pivot_table(index="metric", columns="variant", values="spearman_p", aggfunc="first",
                                          sort=False, dropna=False)
    return table.rename_axis(columns=None)


def few_repetitions(levels: pd.DataFrame, enough: int = MIN_REPETITIONS) -> str | None:
    """A warning naming the cells (metric, task, level) with fewer repetitions than `enough` that carry a value."""
    few = levels[levels["n_repetitions"] < enough] if len(levels) else levels
    if not len(few):
        return None
    cells = sorted({f"{row.metric} ({row.prompt_group}, level {row.level_value:g})" for row in few.itertuples()})
    shown = ", ".join(cells[:6]) + (f" and {len(cells) - 6} more" if len(cells) > 6 else "")
    return (f"some cells have only {int(few['n_repetitions'].min())} repetition(s) with a value: {shown}; their "
            f"intervals are too narrow and their Cohen's d unstable; thresholds and tests need at least {enough} "
            "(the thesis used 10)")
