"""The original thesis pipeline's `configs/prompts.py`, read with `ast`: nothing in it is executed.

Module-level lists it may define (only literal lists of string literals are accepted):
`dream_prompts_it`, `cookie_theft_prompts_it`, the IQ categories `math_prompts`, `language_prompts`,
`logic_prompts`, `factual_prompts`, `creativity_prompts`, and `iq_prompts_it`, either a literal list
or the concatenation of category lists (`math_prompts + language_prompts + ...`). Any other
statement of the file is ignored, never run.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

from configs.prompts import Prompt, PromptFileError, check_new_text

TASK_LISTS = {"dream_prompts_it": ("dreams", "dream"),
              "cookie_theft_prompts_it": ("cookie_theft", "picture_description")}
IQ_CATEGORY_LISTS = {"math_prompts": "math", "language_prompts": "language", "logic_prompts": "logic",
                     "factual_prompts": "factual", "creativity_prompts": "creativity"}
IQ_LIST = "iq_prompts_it"
KNOWN = (*TASK_LISTS, *IQ_CATEGORY_LISTS, IQ_LIST)
UNKNOWN_CATEGORY = "unknown"


def read_original_prompts(path: Path) -> dict[str, tuple[Prompt, ...]]:
    """The prompts of each task the file defines, in list order."""
    source = path.read_text(encoding="utf-8")
    try:
        module = ast.parse(source, filename=str(path))
    except SyntaxError as error:
        raise PromptFileError(f"prompt file {path} is not valid Python: {error}") from None
    assigned = _known_assignments(path, module)
    comments = _category_comments(source)
    tasks: dict[str, list[Prompt]] = {}
    for name, (task, category) in TASK_LISTS.items():
        if name in assigned:
            tasks[task] = [Prompt(text, category) for text, _ in _strings(path, name, assigned[name])]
    iq = _iq_prompts(path, assigned, comments)
    if iq:
        tasks["iq"] = iq
    if not tasks:
        raise PromptFileError(f"prompt file {path} defines none of the lists {', '.join(KNOWN)}")
    return {task: _checked(path, task, prompts) for task, prompts in tasks.items()}


def _known_assignments(path: Path, module: ast.Module) -> dict[str, ast.expr]:
    """`name = value` at module level for the known list names (the last one wins, as in Python)."""
    assigned = {}
    for statement in module.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value = statement.target, statement.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in KNOWN:
            assigned[target.id] = value
    return assigned


def _strings(path: Path, name: str, node: ast.expr) -> list[tuple[str, int]]:
    """(text, line) of each element of a literal list/tuple of strings; anything else is an error."""
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise PromptFileError(f"prompt file {path}, line {node.lineno}: {name} must be a literal list of strings, "
                              f"found {ast.unparse(node)[:60]!r} (the file is parsed, never executed)")
    strings = []
    for element in node.elts:
        if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
            raise PromptFileError(f"prompt file {path}, line {element.lineno}: {name} holds "
                                  f"{ast.unparse(element)[:60]!r}; only string literals are accepted")
        strings.append((element.value, element.lineno))
    return strings


def _iq_prompts(path: Path, assigned: dict[str, ast.expr], comments: dict[int, str]) -> list[Prompt]:
    """iq_prompts_it: a literal list (categories from comments) or a sum of category lists."""
    node = assigned.get(IQ_LIST)
    if node is None:
        names = [name for name in IQ_CATEGORY_LISTS if name in assigned]
    elif isinstance(node, (ast.List, ast.Tuple)):
        inside = {line: category for line, category in comments.items() if node.lineno <= line <= node.end_lineno}
        return [Prompt(text, _category_at(inside, line)) for text, line in _strings(path, IQ_LIST, node)]
    else:
        names = _summed_names(path, node)
    for name in names:
        if name not in assigned:
            raise PromptFileError(f"prompt file {path}: {IQ_LIST} adds {name}, which the file does not define")
    return [Prompt(text, IQ_CATEGORY_LISTS[name]) for name in names for text, _ in _strings(path, name, assigned[name])]


def _summed_names(path: Path, node: ast.expr) -> list[str]:
    """The names of `a + b + c`, each an IQ category list; anything else is an error."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _summed_names(path, node.left) + _summed_names(path, node.right)
    if isinstance(node, ast.Name) and node.id in IQ_CATEGORY_LISTS:
        return [node.id]
    raise PromptFileError(f"prompt file {path}, line {node.lineno}: {IQ_LIST} must be a literal list of strings or "
                          f"a sum of {', '.join(IQ_CATEGORY_LISTS)}; found {ast.unparse(node)[:60]!r}")


def _category_comments(source: str) -> dict[int, str]:
    """Line -> category of each comment that opens with an IQ category word ('# Math', '# logic puzzles')."""
    categories = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            words = token.string.lstrip("#").strip().lower().split()
            if words and words[0].rstrip(":") in IQ_CATEGORY_LISTS.values():
                categories[token.start[0]] = words[0].rstrip(":")
    return categories


def _category_at(comments: dict[int, str], line: int) -> str:
    """The category of the last category comment above `line`; 'unknown' before the first one."""
    above = [number for number in comments if number < line]
    return comments[max(above)] if above else UNKNOWN_CATEGORY


def _checked(path: Path, task: str, prompts: list[Prompt]) -> tuple[Prompt, ...]:
    """The task's prompts, refusing an empty list, an empty text or a repeated text."""
    if not prompts:
        raise PromptFileError(f"prompt file {path}: the list of task {task!r} is empty")
    seen: list[Prompt] = []
    for prompt in prompts:
        if not prompt.text.strip():
            raise PromptFileError(f"prompt file {path}: task {task!r} has an empty prompt")
        check_new_text(path, task, seen, prompt.text)
        seen.append(prompt)
    return tuple(seen)
