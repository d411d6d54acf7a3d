"""The per-record metrics as a Ray job: one task per chunk of records, taken as they finish.

The caller (`analysis.metrics_store.score_with_ray`) hands over the chunks and the function that scores one,
the one-process loop's own step, so both give the same table; this module knows Ray, not the metrics.
Ray reuses a worker process across tasks, so each worker loads spaCy and the sentence encoder once.
Joins the cluster at `address` like the launcher does, or starts a local one with `workers` CPUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd
import ray

from actors.progress import Progress

logger = logging.getLogger(__name__)
ChunkScorer = Callable[[list[dict]], pd.DataFrame]  # the table of one chunk of records


@ray.remote(num_cpus=1)
def _score_chunk(records: list[dict], score: ChunkScorer) -> pd.DataFrame:
    """One task: the table of one chunk (Ray sets OMP_NUM_THREADS=1 for a one-CPU task)."""
    return score(records)


def _join(address: str | None, workers: int | None) -> bool:
    """Join `address`, or start a local cluster of `workers` CPUs; True when this call started Ray."""
    if ray.is_initialized():
        return False
    local_cpus = workers if address is None else None
    ray.init(address=address, num_cpus=local_cpus, namespace="degrader-metrics", include_dashboard=False,
             logging_level=logging.WARNING)
    return True


def score_chunks(parts: list[list[dict]], score: ChunkScorer, address: str | None = None,
                 workers: int | None = None) -> list[pd.DataFrame]:
    """`score` of each chunk (in the order of `parts`), by at most `workers` one-CPU tasks at a time."""
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}; leave it out to use every CPU of the cluster")
    started = _join(address, workers)
    try:
        limit = workers or max(int(ray.cluster_resources().get("CPU", 1)), 1)
        return _run(parts, score, limit)
    finally:
        if started:
            ray.shutdown()


def _run(parts: list[list[dict]], score: ChunkScorer, limit: int) -> list[pd.DataFrame]:
    """Keep `limit` chunk tasks in flight; take results with ray.wait as they finish."""
    if not parts:
        return []
    progress = Progress(sum(map(len, parts)), 0)
    pending: dict = {}
    results: dict[int, pd.DataFrame] = {}
    queue = iter(enumerate(parts))
    try:
        while len(results) < len(parts):
            _submit(pending, queue, limit, score)
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(ready)
            results[index] = _take(ready, index, len(parts[index]))
            progress.update(sum(len(parts[i]) for i in results))
    finally:
        progress.close()
    return [results[index] for index in range(len(parts))]


def _submit(pending: dict, queue, limit: int, score: ChunkScorer) -> None:
    """Start chunk tasks from `queue` until `limit` are in flight or the queue is empty."""
    while len(pending) < limit:
        item = next(queue, None)
        if item is None:
            return
        index, part = item
        pending[_score_chunk.remote(part, score)] = index


def _take(ref, index: int, size: int) -> pd.DataFrame:
    """The table of a finished task; a failed chunk is logged with its place and re-raised."""
    try:
        return ray.get(ref)
    except Exception:
        logger.error("metrics task for chunk %d (%d records) failed", index, size)
        raise
