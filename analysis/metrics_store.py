"""The metrics table of a results file: `<output stem>.metrics.csv`, next to the results JSON.

One row per record (its key, design fields and one column per registered metric) plus `metric_set`,
a hash of every metric's (name, version) when the row was computed. A row is reused while its key is
a record of the file and its `metric_set` is the current one; only the other records are scored, so
re-running on a finished file costs seconds. A new or changed metric (its `version` bumped) changes
the hash, and every row of the file is scored again. The table is replaced atomically
(`degrader.files.atomic_write`). Scoring runs in this process, or as a Ray job (`score_with_ray`, over
`actors/metrics_job.py`) when more than `RAY_THRESHOLD` records of a file are missing.
"""

from __future__ import annotations

import hashlib
import logging
from functools import partial
from pathlib import Path

import pandas as pd

from analysis.registry import METRICS, load_builtin
from analysis.table import DESIGN_FIELDS, metrics_frame
from degrader.files import atomic_write
from degrader.run.keys import record_key
from degrader.run.store import read_records

logger = logging.getLogger(__name__)

CHUNK_SIZE = 250  # records per spaCy stream, and per Ray task
RAY_THRESHOLD = 1000  # missing records of a file above which a Ray job beats one process (docs/analysis.md)
SET_COLUMN = "metric_set"
CONTENT_COLUMN = "content"
DATA_DIR = Path(__file__).parent / "data"
TEXT_COLUMNS = ("key", "model_name", "settings_hash", "prompt_group", "degradation_method", "param_group_name",
                "prompt_category", CONTENT_COLUMN)


def register_metrics() -> list[str]:
    """The names of every metric computed from a record (analysis/registry.py: load_builtin)."""
    return list(load_builtin())


def metric_set_version(names: list[str]) -> str:
    """A short hash of what the cached values depend on besides the record: the metrics' names and
    versions, the data files they read (content units, answer forms), spaCy's version and whether WordNet
    is installed. A cached row counts only under the same one."""
    import spacy

    from analysis.language import wordnet

    data = [hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(DATA_DIR.glob("*.toml"))]
    signature = ";".join([*(f"{name}={METRICS[name].version}" for name in sorted(names)), *data,
                          f"spacy={spacy.__version__}", f"wordnet={wordnet() is not None}"])
    return hashlib.sha256(signature.encode()).hexdigest()[:12]


def content_hash(record: dict) -> str:
    """A short hash of what a record's metrics are computed from: its output, prompt and answer key
    (a record key does not change when an output is regenerated)."""
    parts = (record.get("output") or "", record.get("prompt_text") or "", record.get("answer_key") or "")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def table_path(results: Path) -> Path:
    """outputs_x.json -> outputs_x.metrics.csv."""
    return Path(results).with_suffix(".metrics.csv")


def normalise(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Fixed dtypes, so a table read back from CSV equals the one computed: metrics and levels as floats."""
    frame = frame.copy()
    for column in (*names, "level_value"):
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    for column in ("repeat_index", "prompt_id"):
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    return frame


def chunks(records: list[dict], size: int = CHUNK_SIZE) -> list[list[dict]]:
    """Consecutive slices of `size` records."""
    return [records[start:start + size] for start in range(0, len(records), size)]


def score_chunk(records: list[dict], names: list[str]) -> pd.DataFrame:
    """The metrics table of a chunk: its outputs parsed in one spaCy stream, then every metric per record."""
    register_metrics()
    from analysis.discourse import prepare

    prepare([record.get("output") or "" for record in records])
    frame = metrics_frame(records, names).assign(**{CONTENT_COLUMN: [content_hash(r) for r in records]})
    return normalise(frame, names)


def score_records(records: list[dict], names: list[str], chunk_size: int = CHUNK_SIZE) -> pd.DataFrame:
    """The one-process loop: `score_chunk` over consecutive chunks (the Ray job runs the same chunks)."""
    return _joined([score_chunk(chunk, names) for chunk in chunks(records, chunk_size)], names)


def score_with_ray(records: list[dict], names: list[str], address: str | None = None, workers: int | None = None,
                   chunk_size: int = CHUNK_SIZE) -> pd.DataFrame:
    """`score_records` as a Ray job (actors/metrics_job.py): the same chunks, at most `workers` tasks at a time."""
    # Ray is imported only where it pays for its start; actors/ gets the scoring step, it never imports analysis/
    from actors.metrics_job import score_chunks

    frames = score_chunks(chunks(records, chunk_size), partial(score_chunk, names=names), address, workers)
    return _joined(frames, names)


def _joined(frames: list[pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """The chunks' tables as one, in their order (an empty table of the right columns where there are none)."""
    return pd.concat(frames, ignore_index=True) if frames else _empty(names)


def _empty(names: list[str]) -> pd.DataFrame:
    return normalise(metrics_frame([], names).assign(**{CONTENT_COLUMN: []}), names)


def read_table(path: Path, names: list[str]) -> pd.DataFrame:
    """The rows of a metrics table computed under the current metric set, indexed by key (empty if none)."""
    columns = ["key", *DESIGN_FIELDS, *names, CONTENT_COLUMN]
    if not path.exists():
        return pd.DataFrame(columns=columns).set_index("key", drop=False)
    table = pd.read_csv(path, float_precision="round_trip", keep_default_na=False, na_values=[""],
                        dtype={**{column: str for column in TEXT_COLUMNS}, SET_COLUMN: str})
    complete = SET_COLUMN in table and set(columns) <= set(table.columns)  # else: an older table
    table = table[table[SET_COLUMN] == metric_set_version(names)] if complete else table.iloc[0:0]
    return normalise(table.reindex(columns=columns), names).set_index("key", drop=False)


def write_table(path: Path, frame: pd.DataFrame, names: list[str]) -> None:
    """Replace the metrics table atomically with `frame` and the current metric-set version."""
    stamped = frame.assign(**{SET_COLUMN: metric_set_version(names)})
    atomic_write(path, lambda handle: stamped.to_csv(handle, index=False))


def unique_records(path: Path) -> list[dict]:
    """The records of a results file and its journal, each key once (first wins, as the store keeps it)."""
    records, seen = [], set()
    for record in read_records(path):
        key = record_key(record)
        if key not in seen:
            seen.add(key)
            records.append(record)
    return records


def score(records: list[dict], names: list[str], address: str | None = None, workers: int | None = None,
          ray_threshold: int = RAY_THRESHOLD) -> pd.DataFrame:
    """Score records in this process, or as a Ray job when there are more than `ray_threshold`."""
    if len(records) > ray_threshold and workers != 1:
        return score_with_ray(records, names, address=address, workers=workers)
    return score_records(records, names)


def update_table(results: Path, names: list[str], address: str | None = None, workers: int | None = None,
                 ray_threshold: int = RAY_THRESHOLD) -> tuple[pd.DataFrame, int]:
    """The metrics table of one results file, in record order, scoring only what the cache lacks.

    Returns the table and how many records were scored; the file is rewritten only when it changed."""
    records = unique_records(results)
    path = table_path(results)
    cached = read_table(path, names)
    fresh = dict(zip(cached.index, cached[CONTENT_COLUMN], strict=True)) if len(cached) else {}
    missing = [record for record in records if fresh.get(record_key(record)) != content_hash(record)]
    cached = cached.drop(index=[record_key(r) for r in missing if record_key(r) in fresh])
    if missing:
        logger.info("%s: scoring %d of %d records", results, len(missing), len(records))
        scored = score(missing, names, address, workers, ray_threshold).set_index("key", drop=False)
        cached = pd.concat([frame for frame in (cached, scored) if len(frame)])
    keys = [record_key(record) for record in records]
    table = cached.loc[keys].reset_index(drop=True) if keys else cached.reset_index(drop=True)
    if missing or len(cached) != len(records):
        write_table(path, table, names)
    return table, len(missing)


def load_metrics(paths: list[Path], address: str | None = None, workers: int | None = None, *,
                 ray_threshold: int = RAY_THRESHOLD) -> pd.DataFrame:
    """The `metrics_frame` table of every record of the files (each key once), from their metrics tables.

    Missing rows are scored (in this process or on the Ray cluster at `address`, local by default,
    with `workers` tasks at a time) and the tables updated."""
    names = register_metrics()
    tables = [update_table(Path(path), names, address, workers, ray_threshold)[0] for path in paths]
    frame = pd.concat(tables, ignore_index=True).drop_duplicates("key") if tables else _empty(names)
    return frame.drop(columns=[CONTENT_COLUMN]).reset_index(drop=True)
