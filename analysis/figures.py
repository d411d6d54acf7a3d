"""Figures of the statistics: one small-multiples figure per variant, one normalised figure per lesion.

Each method's level keeps its own axis (sigma, p and N never share one). uni_quant is drawn against
N on a log2 axis running from many values (left) to few (right), so damage grows to the right as for
the other methods; its control (no quantisation, level 0) has no place on a log axis and is drawn, as
for every method, as a horizontal reference: the control's mean (dashed) and its 95 % interval (grey).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pandas as pd

from analysis.statistics import (
    CONTROL_LEVEL,
    LESION,
    THRESHOLD_D,
    VARIANT,
    direction,
    several_settings,
    unhealthy_effect,
    variant_label,
)
from degrader.methods import get_method

logger = logging.getLogger(__name__)

COLUMNS = 4  # small multiples per row
TASK_STYLES = ("-", "--", ":", "-.")
INSTALL_HINT = "figures need matplotlib: pip install -e '.[analysis]'"


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def level_axis(axes, method: str) -> None:
    """Label the x axis with the method's level; uni_quant: log2 axis, many values left, few right."""
    spec = get_method(method)
    if spec.schedule == "geometric":
        axes.set_xscale("log", base=2)
        axes.invert_xaxis()
        axes.xaxis.set_major_formatter(lambda value, _: f"{value:g}")  # 1024 rather than 2^10
        axes.set_xlabel(f"{spec.level_name} (log2; fewer = more damage)")
    else:
        axes.set_xlabel(spec.level_name)


def _control_reference(axes, control: pd.DataFrame) -> None:
    if control.empty:
        return
    row = control.iloc[0]
    if not math.isnan(row["ci_low"]):
        axes.axhspan(row["ci_low"], row["ci_high"], color="0.85", zorder=0)
    axes.axhline(row["mean"], color="0.4", linestyle="--", linewidth=1, label="control")


def metric_panel(axes, cells: pd.DataFrame, threshold: float | None) -> None:
    """One metric of one variant: mean and 95 % band against the level, the control as reference."""
    method = cells["degradation_method"].iloc[0]
    is_control = cells["level_value"] == CONTROL_LEVEL
    _control_reference(axes, cells[is_control])
    shown = cells[~is_control] if get_method(method).schedule == "geometric" else cells
    axes.fill_between(shown["level_value"], shown["ci_low"], shown["ci_high"], alpha=0.25, color="C0", linewidth=0)
    axes.plot(shown["level_value"], shown["mean"], marker="o", markersize=3, color="C0")
    if threshold is not None and not math.isnan(threshold):
        axes.axvline(threshold, color="C3", linestyle=":", linewidth=1.5, label=f"d = {THRESHOLD_D}")
    level_axis(axes, method)
    axes.set_title(cells["metric"].iloc[0], fontsize=9)
    axes.tick_params(labelsize=7)


def variant_figure(levels: pd.DataFrame, trends: pd.DataFrame, plt):
    """Small multiples of one variant's metrics against its level (rows of `levels` and `trends` of it)."""
    metrics = list(dict.fromkeys(levels["metric"]))
    rows = math.ceil(len(metrics) / COLUMNS)
    figure, grid = plt.subplots(rows, COLUMNS, figsize=(3.2 * COLUMNS, 2.6 * rows), squeeze=False)
    thresholds = dict(zip(trends["metric"], trends["threshold"], strict=True))
    for axes, metric in zip(grid.flat, metrics, strict=False):
        metric_panel(axes, levels[levels["metric"] == metric].sort_values("damage"), thresholds.get(metric))
    for axes in list(grid.flat)[len(metrics):]:
        axes.set_visible(False)
    grid.flat[0].legend(fontsize=7)
    figure.suptitle(f"{variant_label(levels.iloc[0])} ({levels['model_name'].iloc[0]}): mean, 95 % bootstrap "
                    f"interval over repetitions; dotted: d first reaches {THRESHOLD_D}", fontsize=9)
    figure.tight_layout()
    return figure


def normalised_figure(levels: pd.DataFrame, plt):
    """Every task's metrics of one lesion (model, method, group) as Cohen's d toward the unhealthy side.

    One panel per task on a shared y axis (which task breaks first reads across panels), colour = metric;
    only metrics with an expected direction, since |d| of an undirected metric says nothing of health;
    a symmetric-log y axis keeps |d| of 1 and of 20 readable.
    """
    levels = levels[[direction(metric) is not None for metric in levels["metric"]]]
    tasks = list(dict.fromkeys(levels["prompt_group"]))
    figure, panels = plt.subplots(1, max(1, len(tasks)), figsize=(5.5 * max(1, len(tasks)), 5.5), sharey=True,
                                  squeeze=False)
    for axes, task in zip(panels.flat, tasks, strict=False):
        _task_effects(axes, levels[levels["prompt_group"] == task])
        axes.set_title(task, fontsize=9)
    panels.flat[0].set_ylabel("Cohen's d vs control, + = toward unhealthy")
    first = levels.iloc[0] if len(levels) else None
    if first is not None:
        figure.suptitle(f"{first['model_name']} {first['degradation_method']} {first['param_group_name']}: which "
                        f"metric breaks first (dotted: d = {THRESHOLD_D})", fontsize=9)
    figure.tight_layout()
    return figure


def _task_effects(axes, levels: pd.DataFrame) -> None:
    """One task's metrics as unhealthy effects against the level, with the 0.8 line."""
    for i, ((_, metric), cells) in enumerate(levels.groupby(["settings_hash", "metric"], sort=False)):
        cells = cells.sort_values("damage").dropna(subset=["d"])
        if cells.empty:  # no effect size at any level (e.g. a single repetition): nothing to draw
            continue
        shown = cells[cells["level_value"] != CONTROL_LEVEL] if _geometric(cells) else cells
        effects = [unhealthy_effect(d, direction(metric)) for d in shown["d"]]
        effects = [e if math.isfinite(e) else math.nan for e in effects]  # complete separation: not drawable
        axes.plot(shown["level_value"], effects, marker="o", markersize=3, color=f"C{i % 10}",
                  linestyle=TASK_STYLES[i // 10 % len(TASK_STYLES)], label=metric)
    axes.axhline(THRESHOLD_D, color="C3", linestyle=":", linewidth=1.5)
    axes.axhline(0, color="0.4", linewidth=0.8)
    axes.set_yscale("symlog", linthresh=1)
    axes.yaxis.set_major_formatter(lambda value, _: f"{value:g}")
    if len(levels):
        level_axis(axes, levels["degradation_method"].iloc[0])
    if axes.get_legend_handles_labels()[1]:  # no metric had an effect size to draw: no legend to show
        axes.legend(fontsize=6, loc="upper left", ncol=2)


def _geometric(cells: pd.DataFrame) -> bool:
    return get_method(cells["degradation_method"].iloc[0]).schedule == "geometric"


def write_figures(levels: pd.DataFrame, trends: pd.DataFrame, folder: Path) -> list[tuple[str, Path]]:
    """Write every variant figure and every lesion's normalised figure as PNG; [] without matplotlib."""
    plt = pyplot()
    if plt is None:
        logger.warning(INSTALL_HINT)
        return []
    written, settings = [], several_settings(levels)
    for key, cells in levels.groupby(list(VARIANT), sort=False):
        at = trends[(trends[list(VARIANT)] == pd.Series(key, index=list(VARIANT))).all(axis=1)]
        written.append(_save(plt, variant_figure(cells, at, plt), folder, "variant " + _name(key, VARIANT, settings)))
    for key, cells in levels.groupby(list(LESION), sort=False):
        written.append(_save(plt, normalised_figure(cells, plt), folder, "normalised " + _name(key, LESION, settings)))
    return written


def _name(key: tuple, fields: tuple[str, ...], settings: bool) -> str:
    """A figure's name from its design key; the settings hash only where several settings are compared."""
    return " ".join(str(value) for value, field in zip(key, fields, strict=True)
                    if settings or field != "settings_hash")


def _save(plt, figure, folder: Path, title: str) -> tuple[str, Path]:
    path = folder / f"{slug(title)}.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return title, path
