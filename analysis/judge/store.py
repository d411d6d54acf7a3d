"""Judgments: what one judge said about one (record, family), where they are stored, and the judged frame.

A results file `results/outputs_X.json` judged by `openai:gpt-4o-mini` is stored in
`results/judged/outputs_X.judged.openai-gpt-4o-mini.json` (the `judged/` folder keeps the file out of
`results/outputs_*.json` globs of the summarizer), through the project's `ResultStore` (journal + atomic
replace). A judgment is unique per (record key, family, prompt file hash): a changed prompt file judges
again, an unchanged one is never judged twice.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from analysis.judge.families import Family, ReplyError
from analysis.registry import METRICS, Metric, register
from degrader.run.keys import record_key
from degrader.run.store import read_records

logger = logging.getLogger(__name__)
JUDGED_DIR = "judged"
COLUMN_PREFIX = "judge_"


def judge_slug(spec: str) -> str:
    """A file-name-safe form of a judge spec: `local:google/gemma-3-4b-it` -> `local-google-gemma-3-4b-it`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-")


def judged_path(output: Path, spec: str) -> Path:
    """Where the judgments of `output` by judge `spec` are stored."""
    output = Path(output)
    return output.parent / JUDGED_DIR / f"{output.stem}.judged.{judge_slug(spec)}.json"


def runs_path(judged: Path) -> Path:
    """Where the per-run summaries (parse rates) of a judged file are stored."""
    return judged.with_name(judged.stem + ".runs.json")


def judgment_key(judgment: dict) -> str:
    """What makes a judgment unique within one judge's file: the record, the family, the prompt file's hash."""
    return "\x1f".join((judgment["record_key"], judgment["family"], judgment["prompt_sha256"]))


def planned_judgment_key(record: dict, family: Family) -> str:
    """The key that the judgment of (record, family) with the current prompt file will have."""
    return judgment_key({"record_key": record_key(record), "family": family.name, "prompt_sha256": family.sha256})


def make_judgment(record: dict, family: Family, reply: str, judge: dict) -> dict:
    """The stored judgment: the judge's identity, the prompt's hash, the raw reply and its fields or `unparsed`.

    `judge`: spec, backend, model id and revision as the backend reports them, decoding settings.
    """
    try:
        fields, error = family.parse(reply), None
    except ReplyError as reason:
        fields, error = None, str(reason)
    return {"record_key": record_key(record), "family": family.name, "prompt_file": family.path.name,
            "prompt_sha256": family.sha256, **judge, "raw_reply": reply, "fields": fields,
            "unparsed": fields is None, "parse_error": error,
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds")}


def parse_rates(judgments: list[dict]) -> dict[str, dict]:
    """Per family: judgments, parsed, and the parse rate (parsed / judgments)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for judgment in judgments:
        counts[judgment["family"]][0] += 1
        counts[judgment["family"]][1] += not judgment["unparsed"]
    return {family: {"judgments": n, "parsed": ok, "parse_rate": ok / n} for family, (n, ok) in sorted(counts.items())}


def judged_frame(paths: list[Path], families: dict[str, Family]) -> pd.DataFrame:
    """One row per judged record (`key` = `degrader.run.plan.record_key`), one column per judged field.

    Columns: `judge_<field>` (booleans as 0/1, NaN where unparsed), `judge_<family>_parsed` (1/0, so the
    missingness of unparsed replies can itself be analysed per level), and `judge_<count_field>` for
    families with one. Only judgments made with the current prompt file of each family count; a record
    judged by two different judges (files of several judges) raises: compare judges, don't mix them.
    """
    rows: dict[str, dict] = defaultdict(dict)
    judges: dict[tuple[str, str], str] = {}
    for path in paths:
        for judgment in read_records(path):
            family = families.get(judgment["family"])
            if family is None or judgment["prompt_sha256"] != family.sha256:
                continue  # made with another version of the prompt file
            seen = judges.setdefault((judgment["record_key"], family.name), judgment["judge"])
            if seen != judgment["judge"]:
                raise ValueError(f"a record is judged for {family.name} by both {seen} and {judgment['judge']}; "
                                 "pass the files of one judge")
            rows[judgment["record_key"]].update(_columns(judgment, family))
    columns = ["key", *(c for family in families.values() for c in family_columns(family))]
    return pd.DataFrame([{"key": key, **values} for key, values in rows.items()], columns=columns)


def family_columns(family: Family) -> list[str]:
    """The frame columns of a family, in order."""
    names = [COLUMN_PREFIX + f.name for f in family.fields]
    if family.count_field:
        names.append(COLUMN_PREFIX + family.count_field)
    return [*names, f"{COLUMN_PREFIX}{family.name}_parsed"]


def _columns(judgment: dict, family: Family) -> dict:
    fields = judgment["fields"]
    values = {COLUMN_PREFIX + f.name: (float(fields[f.name]) if fields else None) for f in family.fields}
    if family.count_field:
        values[COLUMN_PREFIX + family.count_field] = float(sum(fields.values())) if fields else None
    values[f"{COLUMN_PREFIX}{family.name}_parsed"] = 0.0 if judgment["unparsed"] else 1.0
    return values


def merge_judged(metrics: pd.DataFrame, judged: pd.DataFrame) -> pd.DataFrame:
    """`analysis.table.metrics_frame` with the judged columns filled in from `judged_frame` (by `key`).

    The registry's judge metrics compute None from a record alone, so their columns in `metrics` are
    empty: they are replaced here by the stored judgments (NaN for records not judged).
    """
    own = [c for c in metrics.columns if c.startswith(COLUMN_PREFIX) and c in judged.columns]
    return metrics.drop(columns=own).merge(judged, on="key", how="left")


def _not_from_record(record: dict) -> None:
    """A judged value is not a function of the record: it comes from the judge's store (`merge_judged`)."""
    return


def register_families(families: dict[str, Family]) -> None:
    """Register each judged field (and count) in the metric registry, family "judge"; idempotent."""
    for family in families.values():
        entries = [(COLUMN_PREFIX + f.name, f.low, f.high, f.higher_is_healthier, f.meaning) for f in family.fields]
        if family.count_field:
            entries.append((COLUMN_PREFIX + family.count_field, 0, len(family.fields), True,
                            f"number of {family.name} fields judged true"))
        for name, low, high, healthier, meaning in entries:
            if name not in METRICS:
                register(Metric(name, _not_from_record, low, high, healthier,
                                f"{family.reference}; {family.path.name}: {meaning}", family.tasks, family="judge"))
