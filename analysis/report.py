"""Writing a summary: CSV, a Markdown table, and PNG plots of each metric against the level."""

from __future__ import annotations

import csv
from pathlib import Path

from analysis.summary import METRICS


def columns(rows: list[dict]) -> list[str]:
    """Every column of the rows, in first-seen order."""
    names: list[str] = []
    for row in rows:
        names += [name for name in row if name not in names]
    return names


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns(rows))
        writer.writeheader()
        writer.writerows(rows)


def markdown(rows: list[dict], notes: list[str]) -> str:
    """A Markdown table of the rows, preceded by the notes (partial files)."""
    names = [n for n in columns(rows) if not n.endswith("_spread")]
    lines = [f"> {note}" for note in notes] + ([""] if notes else [])
    lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(row.get(n)) for n in names) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], folder: Path) -> list[Path]:
    """One PNG per metric (and accuracy): the metric against the level, with the spread over repetitions."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    metrics = list(METRICS) + [n for n in columns(rows) if n.startswith("accuracy_") and not n.endswith("_spread")]
    for metric in metrics:
        series = _series(rows, metric)
        if not series:
            continue
        figure, axes = plt.subplots(figsize=(6, 4))
        for label, points in series.items():
            levels, means, spreads = zip(*points)
            axes.errorbar(levels, means, yerr=spreads, marker="o", capsize=3, label=label)
        axes.set_xlabel("level")
        axes.set_ylabel(metric)
        axes.legend(fontsize=8)
        figure.tight_layout()
        written.append(folder / f"{metric}.png")
        figure.savefig(written[-1], dpi=100)
        plt.close(figure)
    return written


def _series(rows: list[dict], metric: str) -> dict[str, list[tuple]]:
    series: dict[str, list[tuple]] = {}
    for row in rows:
        if row.get(metric) is not None:
            spread = row.get(f"{metric}_spread") or 0.0
            label = f"{row['task']} {row['method']} {row['group']}"
            series.setdefault(label, []).append((row["level"], row[metric], spread))
    return {label: sorted(points) for label, points in series.items()}
