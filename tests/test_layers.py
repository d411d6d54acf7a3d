"""The import layers (issue 13): no import arrow points back up.

From top to bottom: `scripts` -> `analysis` -> `actors` (Ray) -> `configs` -> `degrader`, and inside `degrader`:
run machinery (`degrader/run`) -> fast decode (`degrader/decoding`) -> lesion core (the rest of `degrader/`).
A module may import its own layer and the layers below it, never one above. Every import statement counts (module
level, inside functions, relative), except those under `if TYPE_CHECKING:`, which never run. `tests/` may import
anything. (Imports by name at run time, `importlib.import_module`, are not seen: analysis/registry.py's are of
analysis modules.)
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bottom to top: a layer may import the layers at or before its own place
LAYERS = ("degrader core", "degrader/decoding", "degrader/run", "configs", "actors", "analysis", "scripts")
PACKAGES = ("degrader", "configs", "actors", "analysis", "scripts")

# The one allow-list: known upward imports in files that other branches were editing when this test came (issue 13).
# file -> reason, every entry removed at merge; an entry whose file no longer breaks the rule fails the test.
ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    """One import statement's target, where it is written."""

    file: str  # relative to the repository root
    line: int
    module: str  # absolute dotted name


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name; None outside the project (the standard library, torch, ...)."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] != "degrader":
        return parts[0]
    return f"degrader/{parts[1]}" if len(parts) > 1 and parts[1] in ("run", "decoding") else "degrader core"


def module_name(path: Path) -> str:
    """degrader/run/plan.py -> degrader.run.plan; a package's __init__.py -> the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    """Whether `dotted` names a module or package of this repository."""
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def is_type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `typing.TYPE_CHECKING`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def resolve(node: ast.ImportFrom, package: str) -> list[str]:
    """The modules a `from ... import ...` loads: `from a import b` is `a.b` where b is a module, else `a`."""
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    return [f"{source}.{alias.name}" if is_module(f"{source}.{alias.name}") else source for alias in node.names]


def imports(path: Path) -> list[Import]:
    """Every project import of a file that runs (see `imports_of`)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imports_of(path.read_text(), str(path.relative_to(ROOT)), package)


def imports_of(source: str, file: str, package: str) -> list[Import]:
    """Every project import in `source`, at any depth, except under `if TYPE_CHECKING:` (it never runs)."""
    found: list[Import] = []
    pending: list[ast.AST] = [ast.parse(source, filename=file)]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found += [Import(file, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [Import(file, node.lineno, module) for module in resolve(node, package)]
        pending.extend(ast.iter_child_nodes(node))
    unique = dict.fromkeys(entry for entry in found if layer_of(entry.module) is not None)  # `from a import b, c`
    return sorted(unique, key=lambda entry: (entry.line, entry.module))


def source_files() -> list[Path]:
    """Every Python file of the layered packages."""
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def violations() -> dict[str, list[str]]:
    """file -> 'file:line module: rule' for each import of a layer above the file's own."""
    found: dict[str, list[str]] = {}
    for path in source_files():
        own = layer_of(module_name(path))
        for entry in imports(path):
            target = layer_of(entry.module)
            if LAYERS.index(target) > LAYERS.index(own):
                rule = f"{own} must not import {target}, a layer above it"
                found.setdefault(entry.file, []).append(f"{entry.file}:{entry.line} {entry.module}: {rule}")
    return found


def test_no_import_points_back_up():
    offending = [line for file, lines in violations().items() if file not in ALLOWED for line in lines]
    assert not offending, (
        f"imports back up the layers {' -> '.join(reversed(LAYERS))} (a layer imports only itself and those after it; "
        "move an import used only in annotations under `if TYPE_CHECKING:`, else pass what the lower layer needs as "
        "an argument):\n" + "\n".join(offending))


def test_allowed_exceptions_still_break_the_rule():
    """An entry of ALLOWED whose file has been fixed goes, so the list never hides a new upward import."""
    stale = sorted(set(ALLOWED) - set(violations()))
    assert not stale, f"no upward import left in {stale}: remove them from ALLOWED in tests/test_layers.py"


CHECKED_SOURCE = """
from typing import TYPE_CHECKING
import torch
import configs.experiments
from ..decoding import fused
from . import store
if TYPE_CHECKING:
    from actors.driver import LaunchOptions
else:
    from degrader import memory
def load():
    from analysis.metrics_store import chunks
"""


def test_the_checker_sees_every_kind_of_import():
    """Module level, in a function, relative, `from package import module`, an `else:` of TYPE_CHECKING; not
    what only type checkers read, nor other packages."""
    found = {(entry.line, entry.module) for entry in imports_of(CHECKED_SOURCE, "degrader/run/x.py", "degrader.run")}
    assert found == {(4, "configs.experiments"), (5, "degrader.decoding.fused"), (6, "degrader.run.store"),
                     (10, "degrader.memory"), (12, "analysis.metrics_store")}
    layers = [layer_of(name) for name in ("degrader.run", "degrader.decoding.fused", "degrader", "degrader.models")]
    assert layers == ["degrader/run", "degrader/decoding", "degrader core", "degrader core"]
