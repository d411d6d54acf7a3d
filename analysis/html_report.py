"""One self-contained HTML report: methods, notes, tables and figures (PNG embedded as base64)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from analysis.statistics import THRESHOLD_D

METHODS = (
    "Each record's metrics come from the metric registry (analysis/registry.py). The repetition is the "
    "unit of replication: a metric is averaged over the prompts of each repetition (prompts share one "
    "damaged model, so they are nested in it), and every interval, effect size and test is over those "
    "repetition means. Interval: 95 % BCa bootstrap of the mean of the repetition means "
    "(scipy.stats.bootstrap, seeded per cell); none below 2 repetitions, and with few repetitions it is too "
    "narrow (about 88 % coverage at 10 repetitions in our simulation). Effect: Cohen's d of a level against the "
    "variant's undamaged control (level 0), with the pooled SD (ddof 1) of the two groups' {unit} values. "
    f"Threshold: the level where d, signed toward the metric's unhealthy direction (|d| when the metric has "
    f"none), first reaches {THRESHOLD_D}, linearly interpolated between the bracketing levels (on log2 N for "
    "uni_quant; 'by L' when it is reached between the control and the first level L of uni_quant, or with "
    "complete separation). Trend: Spearman's rho of the repetition means against damage, one-sided toward "
    "the unhealthy direction (two-sided without one); p-values are not corrected for multiple comparisons."
)

FOLDED_ROWS = 40  # a table longer than this is folded (<details>) in the page
STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
         "th{background:#f2f2f2}img{max-width:100%}.note{color:#a40}")


def png_tag(path: Path, alt: str) -> str:
    """An <img> whose source is the PNG itself, base64-encoded, so the file travels alone."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def table_html(title: str, table: pd.DataFrame) -> str:
    """A titled HTML table (values escaped, floats to 4 significant digits)."""
    body = table.to_html(na_rep="", float_format=lambda v: f"{v:.4g}", escape=True, border=0)
    if len(table) > FOLDED_ROWS:  # long per-level tables stay one click away from the overview
        body = f"<details><summary>{len(table)} rows</summary>\n{body}</details>"
    return f"<h2>{html.escape(title)}</h2>\n{body}"


def render(title: str, notes: list[str], tables: list[tuple[str, pd.DataFrame]],
           figures: list[tuple[str, Path]], d_unit: str = "repetition", hints: list[str] = ()) -> str:
    """The whole report as one HTML string."""
    head = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>")
    parts = [head]
    parts += [f"<p class='note'>{html.escape(line)}</p>" for line in [*notes, *hints]]
    unit = "repetition-mean" if d_unit == "repetition" else "per-record"
    parts.append(f"<h2>Methods</h2><p>{html.escape(METHODS.format(unit=unit))}</p>")
    parts += [table_html(name, table) for name, table in tables]
    if figures:
        parts.append("<h2>Figures</h2>")
        parts += [f"<h3>{html.escape(name)}</h3>{png_tag(path, name)}" for name, path in figures]
    parts.append("</body></html>")
    return "\n".join(parts)
