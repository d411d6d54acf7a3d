"""The judge's metric families: one prompt file each (analysis/judge_prompts/*.toml), and reply validation.

A family's file holds its rubric (fields with type and range), the tasks it applies to, and the prompt
template. Its sha256 (of the file bytes) goes into every judgment, so a judgment is tied to the exact
prompt that produced it. A reply counts only when it is one JSON object with exactly the rubric's fields,
each of the right type and in range (an optional ```json fence around it is allowed); anything else is
`unparsed` and never a score.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from string import Template

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "judge_prompts"
FIELD_TYPES = ("integer", "boolean")
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.DOTALL | re.IGNORECASE)


class ReplyError(ValueError):
    """A judge reply that is not a valid rubric object (stored as unparsed, with this message)."""


@dataclass(frozen=True)
class Field:
    """One rubric field: an integer in [low, high] or a boolean (stored as 0/1 in frames)."""

    name: str
    type: str
    low: int
    high: int
    higher_is_healthier: bool | None  # None: no expected direction
    meaning: str

    def check(self, value) -> None:
        """Raise ReplyError unless `value` is of this field's type and range."""
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise ReplyError(f"{self.name}: expected true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int):  # bool is an int subclass in Python
            raise ReplyError(f"{self.name}: expected an integer, got {value!r}")
        elif not self.low <= value <= self.high:
            raise ReplyError(f"{self.name}: {value} is outside {self.low}-{self.high}")


@dataclass(frozen=True)
class Family:
    """A metric family the judge scores with one prompt (one reply holds all its fields)."""

    name: str
    description: str
    tasks: tuple[str, ...]
    requires: tuple[str, ...]  # record fields that must be non-empty (the IQ answer key)
    fields: tuple[Field, ...]
    template: str
    reference: str
    count_field: str | None  # boolean families: a column counting the true fields
    path: Path
    sha256: str

    def applies_to(self, record: dict) -> bool:
        """Whether this family judges `record` (its task, and the fields the prompt needs)."""
        return record.get("prompt_group") in self.tasks and all(record.get(name) for name in self.requires)

    def render(self, record: dict) -> str:
        """The judge prompt for `record`; the output is shown between markers, never interpreted."""
        values = {"prompt": record.get("prompt_text", ""), "output": record.get("output", ""),
                  "answer_key": record.get("answer_key") or ""}
        return Template(self.template).substitute(values).strip() + "\n"

    def parse(self, reply: str) -> dict:
        """The rubric's fields from a reply; raises ReplyError (the reason) for anything else."""
        text = reply.strip()
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1).strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ReplyError(f"not one JSON object ({error.msg} at {error.pos})") from None
        if not isinstance(value, dict):
            raise ReplyError(f"a JSON {type(value).__name__}, not an object")
        expected = {f.name for f in self.fields}
        if set(value) != expected:
            missing, extra = sorted(expected - set(value)), sorted(set(value) - expected)
            raise ReplyError(f"fields differ from the rubric (missing {missing}, unexpected {extra})")
        for field in self.fields:
            field.check(value[field.name])
        return {field.name: value[field.name] for field in self.fields}


def load_family(path: Path) -> Family:
    """A family from its prompt file; a malformed file raises ValueError naming the file and the fix."""
    data = path.read_bytes()
    spec = tomllib.loads(data.decode("utf-8"))
    missing = [key for key in ("family", "description", "tasks", "template", "reference", "fields") if key not in spec]
    if missing:
        raise ValueError(f"judge prompt {path} lacks {', '.join(missing)}")
    fields = tuple(_field(path, name, values) for name, values in spec["fields"].items())
    template = spec["template"]
    absent = [f.name for f in fields if f.name not in template]
    if absent:
        raise ValueError(f"judge prompt {path}: the template never names fields {absent}; "
                         "the reply format must list them")
    return Family(spec["family"], spec["description"], tuple(spec["tasks"]), tuple(spec.get("requires", ())), fields,
                  template, spec["reference"], spec.get("count_field"), path, hashlib.sha256(data).hexdigest())


def _field(path: Path, name: str, values: dict) -> Field:
    kind = values.get("type")
    if kind not in FIELD_TYPES:
        raise ValueError(f"judge prompt {path}: field {name} has type {kind!r}; use one of {FIELD_TYPES}")
    low, high = (0, 1) if kind == "boolean" else (values["min"], values["max"])
    return Field(name, kind, low, high, values.get("higher_is_healthier"), values.get("meaning", ""))


def load_families(folder: Path = PROMPTS_DIR) -> dict[str, Family]:
    """Every family of `folder`, by name; field names must be unique across families (they name columns)."""
    families: dict[str, Family] = {}
    seen: dict[str, str] = {}
    for path in sorted(Path(folder).glob("*.toml")):
        family = load_family(path)
        if family.name in families:
            raise ValueError(f"judge family {family.name!r} is defined twice ({families[family.name].path}, {path})")
        for field in family.fields:
            if field.name in seen:
                raise ValueError(f"judge field {field.name!r} is in families {seen[field.name]} and {family.name}")
            seen[field.name] = family.name
        families[family.name] = family
    return families


def select_families(families: dict[str, Family], names: list[str] | None) -> list[Family]:
    """The named families (all of them for None); an unknown name raises and lists the valid ones."""
    if not names:
        return list(families.values())
    unknown = [name for name in names if name not in families]
    if unknown:
        raise ValueError(f"unknown judge family {', '.join(unknown)}; available: {', '.join(families)}")
    return [families[name] for name in names]
