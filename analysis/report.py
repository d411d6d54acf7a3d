"""Writing a report: every table as CSV and Markdown, the figures as PNG, and one self-contained HTML file."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import figures, html_report
from analysis.statistics import (
    few_repetitions,
    level_stats,
    spearman_table,
    trend_stats,
    vulnerability_table,
)
from analysis.summary import summarize

logger = logging.getLogger(__name__)

Table = tuple[str, pd.DataFrame]  # (title, table): what the report shows, in order


@dataclass
class Written:
    """What write_report wrote."""

    tables: list[Path] = field(default_factory=list)  # CSV and Markdown files
    figures: list[Path] = field(default_factory=list)
    html: Path | None = None
    notes: list[str] = field(default_factory=list)  # the notes every output carries (partial files, cautions)
    hints: list[str] = field(default_factory=list)  # what the user can do to get more (install matplotlib)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")


def markdown(table: pd.DataFrame, notes: list[str] = ()) -> str:
    """A Markdown table (the index as the first columns when it is named), preceded by the notes."""
    flat = table.reset_index() if any(table.index.names) else table
    names = [str(n) for n in flat.columns]
    lines = [f"> {note}" for note in notes] + ([""] if notes else [])
    lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in flat.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, folder: Path, name: str, notes: list[str] = ()) -> list[Path]:
    """`name`.csv and `name`.md in `folder`."""
    csv_path, md_path = folder / f"{name}.csv", folder / f"{name}.md"
    table.to_csv(csv_path, index=any(table.index.names))
    md_path.write_text(markdown(table, notes), encoding="utf-8")
    return [csv_path, md_path]


def statistics_tables(frame: pd.DataFrame, seed: int = 0, n_resamples: int = 9999,
                      d_unit: str = "repetition") -> tuple[list[Table], pd.DataFrame, pd.DataFrame]:
    """The standard tables of a per-record frame, and the per-level and per-metric statistics behind them."""
    levels = level_stats(frame, seed=seed, n_resamples=n_resamples, d_unit=d_unit)
    trends = trend_stats(frame, levels)
    tables = [("vulnerability: level where Cohen's d first reaches 0.8", vulnerability_table(trends)),
              ("spearman: one-sided p of the metric against damage", spearman_table(trends)),
              ("summary: mean per level (mean of repetition means)", summarize(frame)),
              ("level_stats: mean, 95 % interval, n, Cohen's d per level", levels),
              ("trends: threshold and Spearman per metric", trends)]
    return tables, levels, trends


def write_report(frame: pd.DataFrame, folder: Path, notes: list[str] = (), extra_tables: list[Table] = (),
                 seed: int = 0, n_resamples: int = 9999, d_unit: str = "repetition") -> Written:
    """Every table (standard, then `extra_tables`) as CSV + Markdown, the figures, and report.html."""
    folder.mkdir(parents=True, exist_ok=True)
    tables, levels, trends = statistics_tables(frame, seed, n_resamples, d_unit)
    tables += list(extra_tables)
    notes = [*notes, *filter(None, [few_repetitions(levels)])]
    written = Written(notes=notes)
    for title, table in tables:
        written.tables += write_table(table, folder, figures.slug(title.split(":")[0]), list(notes))
    drawn = figures.write_figures(levels, trends, folder)
    written.figures = [path for _, path in drawn]
    if figures.pyplot() is None:
        written.hints.append(figures.INSTALL_HINT)
    page = html_report.render("Degradation report", list(notes), tables, drawn, d_unit, written.hints)
    written.html = folder / "report.html"
    written.html.write_text(page, encoding="utf-8")
    return written
