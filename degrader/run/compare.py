"""Two runs' outputs, record by record: are the generations the same? Plain Python (no torch), for scripts and
the sweep benchmark.

Records are matched by their key (group, method, level, repetition, prompt, model, settings: degrader/run/keys.py),
so a record made with other settings is another record, not a different output. Only `output` decides whether two
records are equal; times, actors and memory legitimately differ between runs. The batch shape a record was decoded
in (`batch_size_effective` prompts, `reps_in_batch` units) is counted separately: on a GPU another shape is another
kernel and can change the text, on the CPU it must not (tests/actors/test_run.py).
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from degrader.run.keys import record_key
from degrader.run.store import CorruptOutputError, journal_path, kept_aside, read_records

SHAPE_FIELDS = ("batch_size_effective", "reps_in_batch")


@dataclass(frozen=True)
class OutputComparison:
    """One output file of two runs: its records matched by key, and how many of the matched ones differ."""

    name: str
    only_first: int  # records whose key only the first run has
    only_second: int
    matched: int  # records whose key both runs have
    outputs_differ: int  # matched records whose generated text differs
    shapes_differ: int  # matched records decoded in another batch shape (prompts or units per batch)
    shapes_and_outputs_differ: int
    divergence: tuple[int, ...] = ()  # per differing output: characters before the first difference

    @property
    def identical(self) -> bool:
        """The same records, with the same generated text."""
        return not (self.only_first or self.only_second or self.outputs_differ)

    def line(self) -> str:
        """One line for people: counts, then where the differing texts part."""
        text = (f"{self.name}: {self.matched} records in both, outputs differ in {self.outputs_differ} "
                f"(batch shapes differ in {self.shapes_differ}, both in {self.shapes_and_outputs_differ})")
        if self.only_first or self.only_second:
            text += f"; only in the first run {self.only_first}, only in the second {self.only_second}"
        if self.divergence:
            quartiles = (statistics.quantiles(self.divergence, n=4, method="inclusive") if len(self.divergence) > 1
                         else self.divergence * 3)  # inclusive: within min-max, also for two values
            text += (f"; the texts part after {min(self.divergence)}-{max(self.divergence)} characters "
                     f"(median {statistics.median(self.divergence):g}, quartiles {quartiles[0]:g}-{quartiles[2]:g})")
        return text


def compare_outputs(first: Path, second: Path) -> list[OutputComparison]:
    """Every output (outputs_*.json and its journal, or a journal alone) of either results folder, compared record
    by record; an output only one folder has counts all its records as only there. Raises CorruptOutputError for
    a file that is not a degrader output."""
    names = sorted(output_names(Path(first)) | output_names(Path(second)))
    return [compare_records(name, _records(Path(first) / name), _records(Path(second) / name)) for name in names]


def output_names(folder: Path) -> set[str]:
    """The outputs in a results folder, also one that has only its journal (a run stopped before its first
    compaction); not what the store keeps aside (`<stem>.conflicts.json`, `<stem>.replaced-<time>.json`)."""
    journals = {path.name.removesuffix(".journal") for path in folder.glob("outputs_*.json.journal")}
    names = {path.name for path in folder.glob("outputs_*.json")} | journals
    return {name for name in names if not kept_aside(name.removesuffix(".json"))}


def compare_records(name: str, first: dict[str, dict], second: dict[str, dict]) -> OutputComparison:
    """Records by key of two runs of one output (see `compare_outputs`)."""
    matched = sorted(first.keys() & second.keys())
    differ = [key for key in matched if first[key]["output"] != second[key]["output"]]
    shapes = {key for key in matched if _shape(first[key]) != _shape(second[key])}
    return OutputComparison(name, len(first.keys() - second.keys()), len(second.keys() - first.keys()), len(matched),
                            len(differ), len(shapes), sum(key in shapes for key in differ),
                            tuple(len(os.path.commonprefix([first[k]["output"], second[k]["output"]])) for k in differ))


def _records(path: Path) -> dict[str, dict]:
    """Records by key (none where neither the file nor its journal is); the first of a repeated key, as the
    store keeps it (it moves the others aside when it opens the output)."""
    try:
        records = read_records(path)
    except OSError as error:  # e.g. a folder named like an output
        raise CorruptOutputError(f"{path} (or {journal_path(path).name}) cannot be read: {error}") from None
    by_key: dict[str, dict] = {}
    for index, record in enumerate(records):
        try:
            key = record_key(record)
            if not isinstance(record["output"], str):
                raise TypeError(f"output is {type(record['output']).__name__}, not text")
        except (KeyError, TypeError, ValueError) as error:  # a field missing, not a record, a level not a number
            raise CorruptOutputError(f"{path}, record {index} is not a degrader record ({type(error).__name__}: "
                                     f"{error}): give the --results-dir folder of a launch") from None
        by_key.setdefault(key, record)
    return by_key


def _shape(record: dict) -> tuple:
    return tuple(record.get(field) for field in SHAPE_FIELDS)
