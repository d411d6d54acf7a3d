"""ResultWriter: the Ray actor that is the only writer of an experiment's output file."""

from __future__ import annotations

from pathlib import Path

import ray
from ray.util.metrics import Counter

from actors.plan import record_key
from actors.store import ResultStore


@ray.remote(num_cpus=0, max_restarts=0)
class ResultWriter:
    """Owns the ResultStore of one output: de-duplicates, flushes every 20 records, compacts."""

    def __init__(self, path: str, force: bool = False, flush_every: int = 20):
        self.path, self.force, self.flush_every = Path(path), force, flush_every
        self.store: ResultStore | None = None
        self.written = Counter("degrader_records_written", "records accepted by the ResultWriter",
                               tag_keys=("actor",))

    def open(self) -> list[str]:
        """Lock and load the output; raises OutputLockedError / CorruptOutputError to the caller.

        Returns the old files that --force moved aside.
        """
        self.store = ResultStore(self.path, record_key, flush_every=self.flush_every, force=self.force)
        return [str(p) for p in self.store.moved_aside]

    def done_keys(self) -> set[str]:
        """Keys of every record already in the output (read on start, then kept up to date)."""
        return set(self.store.keys)

    def append(self, records: list[dict]) -> int:
        """Add a batch of records from a ModelActor; returns how many were new."""
        new = self.store.add(records)
        if records and new:
            self.written.inc(new, tags={"actor": records[0].get("actor", "unknown")})
        return new

    def count(self) -> int:
        """Records in the output, flushed or pending."""
        return len(self.store.records)

    def close(self) -> int:
        """Compact the final file and release the lock; returns the number of records."""
        if self.store is None:
            return 0
        self.store.close()
        return len(self.store.records)
