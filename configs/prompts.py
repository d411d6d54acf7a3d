"""Prompt sets as data: the built-in sets in configs/prompts/*.toml, and --prompts files.

A prompt file is TOML (`[[prompts]]` tables) or JSON (a list of objects, or {"prompts": [...]}); each
prompt has `task`, `category`, `prompt`, and optionally `answer` and `image` (docs/prompts.md). A
Python file in the original thesis pipeline's `configs/prompts.py` layout is read too, without
executing it (configs/original_prompts.py). The order of a file is the order of `prompt_id`.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

BUILTIN_DIR = Path(__file__).parent / "prompts"
TASKS = ("dreams", "iq", "cookie_theft")
REQUIRED_FIELDS = ("task", "category", "prompt")
OPTIONAL_FIELDS = ("answer", "image")
FORMATS = (".toml", ".json", ".py")


@dataclass(frozen=True)
class Prompt:
    """One prompt of a task."""

    text: str
    category: str  # "dream", "math", "language", "logic", "factual", "creativity", "picture_description", ...
    answer: str | None = None  # answer key where the question has one objective answer
    image: str | None = None  # picture shown with it (file in configs/images/ or absolute path); None: the config's


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message says how to fix it."""


def load_prompt_file(path: str | Path) -> dict[str, tuple[Prompt, ...]]:
    """The prompts of a file by task, in file order; raises PromptFileError on any problem."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise PromptFileError(f"prompt file {path}: unknown format {path.suffix!r}; use one of {', '.join(FORMATS)} "
                              "(docs/prompts.md)")
    if not path.is_file():
        raise PromptFileError(f"prompt file {path} does not exist")
    if path.suffix == ".py":
        from configs.original_prompts import read_original_prompts

        return read_original_prompts(path)
    return _by_task(path, [_prompt_of(path, i, entry) for i, entry in enumerate(_entries(path))])


def prompts_for_task(path: str | Path, task: str) -> tuple[Prompt, ...]:
    """The prompts of `task` in a file; a data file must hold only that task's prompts."""
    by_task = load_prompt_file(path)
    if Path(path).suffix != ".py" and set(by_task) != {task}:
        raise PromptFileError(f"prompt file {path} holds prompts of task(s) {', '.join(sorted(by_task))} but the "
                              f"config runs task {task!r}; give each task its own file")
    if not by_task.get(task):
        raise PromptFileError(f"prompt file {path} has no prompts for task {task!r}")
    return by_task[task]


def _entries(path: Path) -> list:
    """The list of prompt objects of a TOML or JSON file."""
    try:
        if path.suffix == ".toml":
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            document = json.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PromptFileError(f"prompt file {path} is not valid {path.suffix[1:].upper()}: {error}") from None
    entries = document.get("prompts") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise PromptFileError(f"prompt file {path}: expected a list of prompts (TOML: [[prompts]] tables; JSON: a "
                              'list, or {"prompts": [...]})')
    if not entries:
        raise PromptFileError(f"prompt file {path} has no prompts")
    return entries


def _prompt_of(path: Path, index: int, entry) -> tuple[str, Prompt]:
    """(task, Prompt) of entry `index` (counted from 1 in messages, as prompt_id is)."""
    where = f"prompt file {path}, prompt {index + 1}"
    if not isinstance(entry, dict):
        raise PromptFileError(f"{where}: expected a table/object with {', '.join(REQUIRED_FIELDS)}")
    unknown = set(entry) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS)
    if unknown:
        raise PromptFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; fields: "
                              f"{', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)}")
    for name in REQUIRED_FIELDS:
        if not isinstance(entry.get(name), str) or not entry[name].strip():
            raise PromptFileError(f"{where}: missing or empty field {name!r} (a non-empty string)")
    for name in OPTIONAL_FIELDS:
        if entry.get(name) is not None and not isinstance(entry[name], str):
            raise PromptFileError(f'{where}: {name!r} must be a string (write {name} = "{entry[name]}")')
    if entry["task"] not in TASKS:
        raise PromptFileError(f"{where}: unknown task {entry['task']!r}; use one of {', '.join(TASKS)}")
    return entry["task"], Prompt(entry["prompt"], entry["category"], entry.get("answer"), entry.get("image"))


def _by_task(path: Path, tagged: list[tuple[str, Prompt]]) -> dict[str, tuple[Prompt, ...]]:
    """Group (task, prompt) pairs by task, refusing a prompt text twice in one task."""
    by_task: dict[str, list[Prompt]] = {}
    for task, prompt in tagged:
        check_new_text(path, task, by_task.setdefault(task, []), prompt.text)
        by_task[task].append(prompt)
    return {task: tuple(prompts) for task, prompts in by_task.items()}


def check_new_text(path: Path, task: str, earlier: list[Prompt], text: str) -> None:
    """Refuse a repeated prompt: records are keyed by prompt text, so a repeat would never be recorded."""
    if any(p.text == text for p in earlier):
        raise PromptFileError(f"prompt file {path}: task {task!r} has the prompt {text!r} twice; records are keyed "
                              "by prompt text, so remove the repeat")


TASK_PROMPTS: dict[str, tuple[Prompt, ...]] = {task: prompts_for_task(BUILTIN_DIR / f"{task}.toml", task)
                                               for task in TASKS}
DREAM_PROMPTS = TASK_PROMPTS["dreams"]
IQ_PROMPTS = TASK_PROMPTS["iq"]
COOKIE_THEFT_PROMPTS = TASK_PROMPTS["cookie_theft"]
