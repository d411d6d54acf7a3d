"""A judge run over results files: only the (record, family) pairs not yet judged, stored as they finish.

This process is the only writer of each judged file (the store's flock enforces it): the backends only
return replies, whether from an HTTP endpoint or from Ray actors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from analysis.judge.backends import JudgeBackend, Reply, as_reply
from analysis.judge.families import Family
from analysis.judge.store import (
    judged_path,
    judgment_key,
    make_judgment,
    parse_rates,
    planned_judgment_key,
    runs_path,
)
from degrader.run.store import ResultStore, read_records

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """One (record, family) to judge, with its rendered prompt."""

    record: dict
    family: Family
    prompt: str


def pending_requests(records: list[dict], families: list[Family], done_keys: set[str]) -> list[Request]:
    """Every (record, family) that applies and has no judgment with the family's current prompt file."""
    return [Request(record, family, family.render(record)) for record in records for family in families
            if family.applies_to(record) and planned_judgment_key(record, family) not in done_keys]


def judge_file(output: Path, backend: JudgeBackend, families: list[Family], flush_every: int = 20) -> dict:
    """Judge what is missing for `output`; returns the run's summary (also stored next to the judged file)."""
    identity = backend.identity()
    path = judged_path(output, identity["judge"])
    store = ResultStore(path, judgment_key, flush_every=flush_every)
    started = datetime.now(UTC).isoformat(timespec="microseconds")
    new: list[dict] = []
    failed = 0
    try:
        requests = pending_requests(read_records(output), families, store.keys)
        logger.info("%s: %d judgments to make (%s)", output, len(requests), identity["judge"])
        for index, reply in backend.complete([r.prompt for r in requests]):
            if isinstance(reply, Exception):  # not a judgment: the pair stays missing for the next run
                failed += 1
                logger.warning("judgment failed after retries (%s: %s)", type(reply).__name__, str(reply)[:200])
                continue
            reply = as_reply(reply)
            judgment = make_judgment(requests[index].record, requests[index].family, reply.text,
                                     {**identity, **_served(reply)})
            store.add([judgment])
            new.append(judgment)
    finally:
        store.close()
    summary = {"run": started, "judge": identity["judge"], "output": str(output), "judged_file": str(path),
               "judged": len(new), "failed": failed, "parse_rates": parse_rates(new)}
    _store_run(path, summary)
    return summary


def _served(reply: Reply) -> dict:
    return {"judge_model": reply.model, "judge_revision": reply.revision, "judge_reply_tokens": reply.tokens}


def _store_run(path: Path, summary: dict) -> None:
    """Append the run's summary (its parse rate) to `<judged>.runs.json`, through the same store."""
    runs = ResultStore(runs_path(path), lambda run: run["run"] + "\x1f" + run["judge"], flush_every=1)
    try:
        runs.add([summary])
    finally:
        runs.close()


def stored_parse_rates(output: Path, spec: str, families: list[Family]) -> dict[str, dict]:
    """Parse rates over every judgment stored for `output` by `spec` with the current prompt files."""
    hashes = {family.sha256 for family in families}
    return parse_rates([j for j in read_records(judged_path(output, spec)) if j["prompt_sha256"] in hashes])
