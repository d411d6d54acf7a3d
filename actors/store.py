"""The results file: a JSON array kept complete at every instant, plus an fsynced journal.

A flush appends the new records to `<output>.journal` (one JSON object a line) and fsyncs it:
its cost depends on the records flushed, not on the file size. Compaction writes every record
into a temporary file, fsyncs it and `os.replace`s the output, so the file at the output path is
always complete, valid JSON; the journal is emptied afterwards. A crash at any instant loses no
flushed record: on start the output and the journal are merged and de-duplicated by record key.
Only one process may hold the store of an output (an flock on `<output>.lock`).
Records of the original thesis pipeline are normalised as they are read (actors/legacy.py): fields
are added, none changed, so the next compaction keeps every original field.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterable, TextIO

from actors.legacy import normalise

Record = dict
KeyFn = Callable[[Record], str]


class OutputLockedError(RuntimeError):
    """Another launch is writing the same output file."""


class CorruptOutputError(ValueError):
    """The existing output or journal cannot be read; it was left untouched."""


class ResultStore:
    """Records of one output file: de-duplicated by key, flushed to a journal, compacted atomically."""

    def __init__(self, path: Path, key_fn: KeyFn, flush_every: int = 20, compact_every_s: float = 60.0,
                 force: bool = False):
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".journal")
        self.key_fn, self.flush_every, self.compact_every_s = key_fn, flush_every, compact_every_s
        self._lock = _acquire_lock(self.path.with_name(self.path.name + ".lock"))
        self.records: list[Record] = []
        self.keys: set[str] = set()
        self.pending: list[Record] = []
        self.last_compaction = time.monotonic()
        self.moved_aside = self._move_aside() if force else []
        self._load()

    def _move_aside(self) -> list[Path]:
        """--force: keep the old output and journal under a new name, never delete them."""
        stamp = time.strftime("%Y%m%d_%H%M%S")
        moved = []
        for old in (self.path, self.journal):
            if old.exists():
                new = old.with_name(f"{self.path.stem}.replaced-{stamp}{old.name[len(self.path.stem):]}")
                os.replace(old, new)
                moved.append(new)
        return moved

    def _load(self) -> None:
        self._accept(read_records(self.path))
        if self.journal.exists() and self.journal.stat().st_size:
            self.compact()

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
        """Keep the records whose key is new; flush every `flush_every`. Returns how many were new."""
        new = self._accept(records)
        self.pending += new
        if len(self.pending) >= self.flush_every:
            self.flush()
        return len(new)

    def flush(self) -> None:
        """Append pending records to the journal and fsync: after this they survive any crash."""
        if self.pending:
            lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in self.pending)
            created = not self.journal.exists()
            with open(self.journal, "a", encoding="utf-8") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
            if created:
                _fsync_directory(self.path.parent)  # the new journal's name survives a power loss too
            self.pending = []
        if time.monotonic() - self.last_compaction > self.compact_every_s:
            self.compact()

    def compact(self) -> None:
        """Rewrite the output atomically with every record, then empty the journal."""
        _atomic_write_json(self.path, self.records)
        with open(self.journal, "w", encoding="utf-8") as handle:
            os.fsync(handle.fileno())
        self.pending = []
        self.last_compaction = time.monotonic()

    def close(self) -> None:
        """Compact, remove the empty journal and release the lock."""
        self.compact()
        self.journal.unlink(missing_ok=True)
        self._lock.close()


def _acquire_lock(path: Path):
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
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
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
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = lines[:-1]  # a last line without "\n" was cut by a crash before its fsync returned
    try:
        return [json.loads(line) for line in complete if line]
    except json.JSONDecodeError as error:
        raise CorruptOutputError(f"journal {path} has a corrupt line ({error}); it was left untouched") from None


def _atomic_write_json(path: Path, records: list[Record]) -> None:
    atomic_write(path, lambda handle: json.dump(records, handle, ensure_ascii=False, indent=1))


def atomic_write(path: Path, write: Callable[[TextIO], object]) -> None:
    """Replace `path` with what `write(handle)` writes: temporary file, fsync, os.replace, fsync the folder.

    Readers see the old file or the new one, never a part; every file the project writes goes through here."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


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

    Records of the original pipeline come back normalised (actors/legacy.py); the file is not changed.
    """
    path = Path(path)
    journal = path.with_name(path.name + ".journal")
    return _normalised(path, _read_output(path)) + _normalised(journal, _read_journal(journal))
