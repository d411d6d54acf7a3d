"""Summary of result files per (method, group, level): text metrics, perplexity, IQ accuracy."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from actors.plan import record_key
from actors.store import read_records
from analysis.answers import score_answer
from analysis.metrics import distinct, repetition

METRICS = ("tokens", "empty_rate", "distinct_1", "distinct_2", "repetition", "perplexity")


def load(paths: list[Path]) -> tuple[list[dict], list[str]]:
    """Every record of the files (journals of runs in progress included, duplicates dropped), and notes."""
    records, notes, seen = [], [], set()
    for path in paths:
        if Path(str(path) + ".journal").exists():
            notes.append(f"{path} is partial: its run is in progress or was interrupted")
        for record in read_records(path):
            if record_key(record) not in seen:
                seen.add(record_key(record))
                records.append(record)
    return records, notes


def record_metrics(record: dict) -> dict[str, float | None]:
    """The metrics of one record."""
    text = record.get("output", "")
    return {"tokens": record.get("tokens"), "empty_rate": float(not text.strip()), "distinct_1": distinct(text, 1),
            "distinct_2": distinct(text, 2), "repetition": repetition(text), "perplexity": record.get("perplexity")}


def _mean_and_spread(values: list[float]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return statistics.fmean(present), statistics.pstdev(present) if len(present) > 1 else 0.0


def summarize(records: list[dict]) -> list[dict]:
    """One row per (method, group, level): n, mean and spread over repetitions of each metric, accuracy."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        key = (record["model_name"], record.get("prompt_group", ""), record.get("settings_hash", ""),
               record["degradation_method"], record["param_group_name"], record["level_value"])
        groups[key].append(record)
    return [_row(key, rows) for key, rows in sorted(groups.items(), key=lambda item: tuple(map(str, item[0][:5])) + (item[0][5],))]


def _row(key: tuple, records: list[dict]) -> dict:
    model, task, settings, method, group, level = key
    row = {"model": model, "task": task, "settings": settings, "method": method, "group": group, "level": level,
           "n": len(records),
           "repetitions": len({r["repeat_index"] for r in records})}
    repetitions = _by_repetition(records)
    per_rep = {rep: [record_metrics(r) for r in rs] for rep, rs in repetitions.items()}
    for metric in METRICS:
        rep_means = [_mean_and_spread([m[metric] for m in ms])[0] for ms in per_rep.values()]
        row[metric], row[f"{metric}_spread"] = _mean_and_spread(rep_means)
    by_rep = [accuracy(rep_records) for rep_records in repetitions.values()]
    for name in sorted({name for scores in by_rep for name in scores}):
        row[name], row[f"{name}_spread"] = _mean_and_spread([scores.get(name) for scores in by_rep])
    return row


def _by_repetition(records: list[dict]) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = defaultdict(list)
    for record in records:
        grouped[record["repeat_index"]].append(record)
    return grouped


def accuracy(records: list[dict]) -> dict[str, float]:
    """accuracy_<category> over the records that carry an answer key."""
    scored: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        if record.get("answer_key"):
            scored[record["prompt_category"]].append(
                score_answer(record["output"], record["answer_key"], record.get("prompt_text", "")))
    return {f"accuracy_{category}": sum(v) / len(v) for category, v in sorted(scored.items())}
