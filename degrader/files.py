"""Crash-safe file writes: every file the project writes (results, metric tables, judge caches, compile
bundles) is replaced atomically through `atomic_write`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TextIO


def atomic_write(path: Path, write: Callable[[TextIO], object]) -> None:
    """Replace `path` with what `write(handle)` writes: temporary file, fsync, os.replace, fsync the folder.

    Readers see the old file or the new one, never a part; every file the project writes goes through here."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """`atomic_write` of a binary payload (compile bundles, precompiled steps)."""
    atomic_write(path, lambda handle: handle.buffer.write(data))


def fsync_directory(folder: Path) -> None:
    """fsync a folder, so that a rename or a new file in it survives a crash."""
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
