"""ResultWriter: the Ray actor that is the only writer of an experiment's output file.

It acknowledges only what is on disk: `append` returns after the journal's fsync, so the driver's
`done_keys` never holds a record a crash could lose. Ray restarts a killed writer (its calls are
retried, and appends are idempotent by record key); the restarted one reopens the output from the
output and journal, without --force.
"""

from __future__ import annotations

import logging
from pathlib import Path

import ray
from ray.util.metrics import Counter

from degrader.run.keys import record_key
from degrader.run.store import ResultStore


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class ResultWriter:
    """Owns the ResultStore of one output: de-duplicates, flushes every append to the journal, compacts."""

    def __init__(self, path: str, force: bool = False, owner: str | None = None):
        self.path, self.force, self.owner = Path(path), force, owner
        # the driver reports the store's failures and conflicts; without a handler Python's last-resort one
        # would print them a second time, through Ray, on the console
        logging.getLogger().addHandler(logging.NullHandler())
        self.store: ResultStore | None = None
        self.written = Counter("degrader_records_written", "records accepted by the ResultWriter",
                               tag_keys=("actor",))

    def __repr__(self) -> str:
        """The dashboard's Repr column (Ray reads it when the actor starts): the output it writes."""
        return f"ResultWriter({self.path.name})"

    def open(self) -> dict:
        """Lock and load the output; raises OutputLockedError / CorruptOutputError / StoreWriteError to the caller.

        Returns the old files that --force moved aside and the conflicts kept aside on load.
        """
        self.store = ResultStore(self.path, record_key, force=self.force, owner=self.owner)
        return {"moved_aside": [str(p) for p in self.store.moved_aside], "conflicts": len(self.store.conflicts),
                "conflicts_path": str(self.store.conflicts_path)}

    def _opened(self) -> ResultStore:
        """The store; a restarted writer (its __init__ ran again) reopens it, never with --force."""
        if self.store is None:
            self.store = ResultStore(self.path, record_key, owner=self.owner)
        return self.store

    def done_keys(self) -> set[str]:
        """Keys of every record on disk (read on start, then kept up to date)."""
        return set(self._opened().keys)

    def append(self, records: list[dict]) -> int:
        """Add a batch of records from a ModelActor and fsync them; returns how many were new.

        Raises StoreWriteError when they could not be saved (nothing of them is then counted).
        """
        store = self._opened()
        new = store.add(records)
        store.flush()
        if records and new:
            self.written.inc(new, tags={"actor": records[0].get("actor", "unknown")})
        return new

    def failure(self) -> str | None:
        """The message of a failed write (with the current counts of saved and unsaved records), or None."""
        store = self.store
        return None if store is None or store.failure is None else store.failure_message()

    def count(self) -> int:
        """Records on disk."""
        return len(self._opened().records)

    def close(self) -> int:
        """Compact the final file and release the lock; returns the number of records.

        A writer restarted since the last append opens the output first, so its journal is merged too.
        """
        store = self._opened()
        store.close()
        return len(store.records)
