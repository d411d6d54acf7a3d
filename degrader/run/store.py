"""The results file: a JSON array kept complete at every instant, plus an fsynced journal.

A flush appends the new records to `<output>.journal` (one JSON object a line) and fsyncs it:
its cost depends on the records flushed, not on the file size. Compaction writes every record
into a temporary file, fsyncs it and `os.replace`s the output, so the file at the output path is
always complete, valid JSON; the journal is emptied afterwards. A crash at any instant loses no
flushed record: on start the output and the journal are merged and de-duplicated by record key.
Only one process may hold the store of an output (an flock on `<output>.lock`).
Records of the original thesis pipeline are normalised as they are read (degrader/run/legacy.py): fields
are added, none changed, so the next compaction keeps every original field.

A failed write (disk full, I/O error, read-only filesystem) is never acknowledged: the records it
held leave the store's counts, the journal is cut back to its last complete line, no temporary file
stays behind, and every later `add` is refused with the same message (`StoreWriteError`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Callable, Iterable

from degrader.files import atomic_write, fsync_directory
from degrader.run.legacy import normalise

CONFLICTS = ".conflicts"  # <output stem>.conflicts.json: records whose key repeats a kept one's with other content
REPLACED, REPLACED_STAMP = ".replaced-", "%Y%m%d_%H%M%S"  # --force: <output stem>.replaced-<stamp>.json (+ journal)
REPLACED_PATTERN = re.escape(REPLACED) + r"\d{8}_\d{6}$"  # REPLACED and a REPLACED_STAMP, at the end of a stem

logger = logging.getLogger(__name__)
Record = dict
KeyFn = Callable[[Record], str]
# what a failed write means for the user, by errno: the words of the message and the fix
WRITE_FAILURES = {errno.ENOSPC: ("disk full", "free space"), errno.EDQUOT: ("disk quota exceeded", "free space"),
                  errno.EFBIG: ("file size limit reached", "raise the limit (ulimit -f) or free space"),
                  errno.EROFS: ("read-only filesystem", "make it writable"),
                  errno.EIO: ("I/O error", "check the disk")}


class OutputLockedError(RuntimeError):
    """Another launch is writing the same output file."""


class CorruptOutputError(ValueError):
    """The existing output or journal cannot be read; it was left untouched."""


class StoreWriteError(RuntimeError):
    """Writing the output or its journal failed; only what is on disk was counted."""


def writefailure_message(path: Path, error: OSError, saved: int, unsaved: int) -> str:
    """'disk full writing X: N records saved, M generated records not saved; free space and run the same command'."""
    what, fix = WRITE_FAILURES.get(error.errno, (error.strerror or str(error), "fix it"))
    return (f"{what} writing {path}: {saved} records saved, {unsaved} generated records not saved; "
            f"{fix} and run the same command")


class ResultStore:
    """Records of one output file: de-duplicated by key, flushed to a journal, compacted atomically."""

    def __init__(self, path: Path, key_fn: KeyFn, flush_every: int = 20, compact_every_s: float = 60.0,
                 force: bool = False, owner: str | None = None):
        self.path = Path(path)
        self.journal = journal_path(self.path)
        self.conflicts_path = self.path.with_name(f"{self.path.stem}{CONFLICTS}.json")
        self.key_fn, self.flush_every, self.compact_every_s = key_fn, flush_every, compact_every_s
        self._lock = _acquire_lock(self.path.with_name(self.path.name + ".lock"), owner)
        self.records: list[Record] = []
        self.keys: set[str] = set()
        self.pending: list[Record] = []
        self.conflicts: list[Record] = []  # same key as a kept record, different content: kept aside on load
        self.failure: str | None = None  # the message of a failed write; the store then refuses records
        self.error: OSError | None = None
        self.unsaved = 0  # records handed to the store that a failed write kept off the disk
        self.last_compaction = time.monotonic()
        try:
            _remove_stale_temporaries(self.path)  # left by a crash mid-compaction; ours to remove under the lock
            self.moved_aside = self._move_aside() if force else []
            self._load()
        except BaseException:
            self._lock.close()
            raise

    def _move_aside(self) -> list[Path]:
        """--force: keep the old output and journal under a new name, never delete them."""
        stamp = time.strftime(REPLACED_STAMP)
        moved = []
        for old in (self.path, self.journal):
            if old.exists():
                new = old.with_name(f"{self.path.stem}{REPLACED}{stamp}{old.name[len(self.path.stem):]}")
                os.replace(old, new)
                moved.append(new)
        return moved

    def _load(self) -> None:
        existing = read_records(self.path)  # legacy records normalised (degrader/run/legacy.py)
        by_key = {}
        for record in existing:
            kept = by_key.setdefault(self.key_fn(record), record)
            if kept is not record and kept != record:  # exact duplicates are dropped; others kept aside
                self.conflicts.append(record)
        self.records, self.keys = list(by_key.values()), set(by_key)
        if self.conflicts:
            self._keep_conflicts()
        if (self.conflicts or len(self.records) < len(existing)
                or (self.journal.exists() and self.journal.stat().st_size)):
            self.compact()

    def _keep_conflicts(self) -> None:
        """Append the conflicting records to `<stem>.conflicts.json` before compaction drops them from the output."""
        earlier = _read_output(self.conflicts_path)
        try:
            _atomic_write_json(self.conflicts_path, earlier + self.conflicts)
        except OSError as error:
            self._fail(error)
        logger.warning("%d records repeat a key of %s with different content; kept aside in %s",
                       len(self.conflicts), self.path, self.conflicts_path)

    def _accept(self, records: Iterable[Record]) -> list[Record]:
        new = []
        for record in records:
            key = self.key_fn(record)
            if key not in self.keys:
                self.keys.add(key)
                new.append(record)
        self.records += new
        return new

    def add(self, records: Iterable[Record]) -> int:
        """Keep the records whose key is new; flush every `flush_every`. Returns how many were new.

        After a failed write every call raises StoreWriteError and counts its new records as not saved.
        """
        if self.failure is not None:
            records = list(records)
            self.unsaved += len({self.key_fn(r) for r in records} - self.keys)
            raise StoreWriteError(self.failure_message())
        new = self._accept(records)
        self.pending += new
        if len(self.pending) >= self.flush_every:
            self.flush()
        return len(new)

    def flush(self) -> None:
        """Append pending records to the journal and fsync: after this they survive any crash."""
        if self.pending:
            lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in self.pending)
            try:
                _append_durably(self.journal, lines)
            except OSError as error:
                self._fail(error)
            self.pending = []
        if time.monotonic() - self.last_compaction > self.compact_every_s:
            self.compact()

    def _fail(self, error: OSError) -> None:
        """Forget the records the failed write held (they are not on disk) and refuse every later record."""
        lost = {self.key_fn(record) for record in self.pending}
        self.records = [record for record in self.records if self.key_fn(record) not in lost]
        self.keys -= lost
        self.unsaved += len(lost)
        self.pending = []
        self.error = error
        self.failure = self.failure_message()
        logger.error("%s", self.failure)
        raise StoreWriteError(self.failure) from error

    def failure_message(self) -> str:
        return writefailure_message(self.path, self.error, len(self.records), self.unsaved)

    def compact(self) -> None:
        """Rewrite the output atomically with every record, then empty the journal.

        A failed rewrite loses no flushed record (the journal still holds them) but stops the store: the
        next write to a full disk would fail too.
        """
        try:
            _atomic_write_json(self.path, self.records)
            with open(self.journal, "w", encoding="utf-8") as handle:
                os.fsync(handle.fileno())
        except OSError as error:
            self._fail(error)  # the pending records were in no file: they are forgotten and counted as not saved
        self.pending = []
        self.last_compaction = time.monotonic()

    def close(self) -> None:
        """Compact, remove the empty journal and release the lock (after a failed write: only release it)."""
        try:
            if self.failure is None:
                self.compact()
                self.journal.unlink(missing_ok=True)
        finally:
            self._lock.close()


def _acquire_lock(path: Path, owner: str | None = None):
    """Hold an exclusive flock on `path` and write who holds it (`owner`, or this process) into it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown process"
        handle.close()
        raise OutputLockedError(f"another launch is writing {path.with_suffix('')} ({holder}); wait for it to "
                                "finish or stop it, or choose another --results-dir / name_suffix") from None
    handle.seek(0)
    handle.truncate()
    handle.write(owner or f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    return handle


def _read_output(path: Path) -> list[Record]:
    if not path.exists():
        return []
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptOutputError(f"{path} is not valid JSON ({error}); it was left untouched: repair it or "
                                 "move it aside (--force moves it aside and starts again)") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise CorruptOutputError(f"{path} is not a JSON array of records; it was left untouched: "
                                 "move it aside or use --force")
    return records


def _read_journal(path: Path) -> list[Record]:
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CorruptOutputError(f"journal {path} cannot be read as UTF-8 text ({error}); it was left untouched: "
                                 "move it aside or use --force") from None
    lines = text.split("\n")
    complete = lines[:-1]  # a last line without "\n" was cut by a crash before its fsync returned
    try:
        records = [json.loads(line) for line in complete if line]
    except json.JSONDecodeError as error:
        raise CorruptOutputError(f"journal {path} has a corrupt line ({error}); it was left untouched") from None
    if not all(isinstance(r, dict) for r in records):
        raise CorruptOutputError(f"journal {path} has a line that is not a record (a JSON object); it was left "
                                 "untouched: move it aside or use --force")
    return records


def kept_aside(stem: str) -> bool:
    """Whether a file named `stem`.json (or .json.journal) is what the store keeps beside an output, not one:
    the records of a conflicting key (`<output>.conflicts`) or an output that --force replaced."""
    return stem.endswith(CONFLICTS) or re.search(REPLACED_PATTERN, stem) is not None


def _append_durably(path: Path, lines: str) -> None:
    """Append and fsync; on failure cut the file back to its old size, so it ends with a complete line.

    Unbuffered writes on the descriptor: a buffered file would write the rest of its buffer again when
    closed, after the cut.
    """
    created = not path.exists()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(descriptor).st_size
        try:
            remaining = memoryview(lines.encode("utf-8"))
            while remaining:
                remaining = remaining[os.write(descriptor, remaining):]
            os.fsync(descriptor)
        except OSError:
            _truncate_quietly(descriptor, size)
            raise
    finally:
        os.close(descriptor)
    if created:
        fsync_directory(path.parent)  # the new journal's name survives a power loss too


def _truncate_quietly(descriptor: int, size: int) -> None:
    """Best effort: a half-written line must not stay in front of the next append."""
    try:
        os.ftruncate(descriptor, size)
        os.fsync(descriptor)
    except OSError:
        pass  # the reader drops a last line without "\n"; nothing more can be done on a failing disk


def _atomic_write_json(path: Path, records: list[Record]) -> None:
    atomic_write(path, lambda handle: json.dump(records, handle, ensure_ascii=False, indent=1))


def _remove_stale_temporaries(path: Path) -> None:
    """Remove `.<output>.<pid>.tmp` files of earlier writers of this output (called under its lock)."""
    for stale in _temporaries(path):
        logger.info("removing %s, left by an interrupted write", stale)
        stale.unlink(missing_ok=True)


def _temporaries(path: Path) -> Iterable[Path]:
    """The `.<output>.<pid>.tmp` files of rewrites of `path` (a crash mid-compaction leaves one)."""
    return path.parent.glob(f".{path.name}.*.tmp")


def _normalised(path: Path, records: list[Record]) -> list[Record]:
    """Records with those of the original pipeline normalised; one that cannot be is an error naming it."""
    normalised = []
    for index, record in enumerate(records):
        try:
            normalised.append(normalise(record))
        except ValueError as error:
            raise CorruptOutputError(f"{path}, record {index}: {error}; the file was left untouched") from None
    return normalised


def read_records(path: Path) -> list[Record]:
    """Every record of an output and its journal, read-only and without the lock (dry runs, reports).

    Records of the original pipeline come back normalised (degrader/run/legacy.py); the file is not changed.
    """
    path, journal = Path(path), journal_path(path)
    return _normalised(path, _read_output(path)) + _normalised(journal, _read_journal(journal))


def journal_path(path: Path) -> Path:
    """The journal of an output: the records flushed since its last compaction; none after a clean close."""
    return Path(path).with_name(Path(path).name + ".journal")


def closed_cleanly(path: Path) -> bool:
    """Whether an output is as its writer's clean close leaves it: the file there, no journal to compact and no
    temporary file of an interrupted rewrite to remove (work that only opening the store does)."""
    path = Path(path)
    return path.exists() and not journal_path(path).exists() and not any(_temporaries(path))
