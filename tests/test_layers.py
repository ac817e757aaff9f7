"""Imports point down the layers: no module imports a layer above its own.

Every module under ``src/mps_callback`` is parsed (not imported), and every import of
``mps_callback`` it holds is checked against one table: top-level imports, imports inside
functions, under ``TYPE_CHECKING``, ``from mps_callback import x`` and relative imports
alike. A module whose top-level name is in no layer fails too, so a new folder (``reports/``,
``dashboard/``) joins the table on purpose, with the layers it may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "mps_callback"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE

#: Every top-level module and folder of the package, by layer. ``__init__`` is the package
#: itself (its version). The base is what every layer may use: MPS's vocabulary (``mps``),
#: where outputs are stored (``storage``), errors, settings, logs, metrics, the tables.
LAYERS: dict[str, frozenset[str]] = {
    "base": frozenset({"__init__", "errors", "config", "logs", "metrics", "mps", "storage", "store"}),
    "verify": frozenset({"verify"}),
    "journal": frozenset({"journal"}),
    "project": frozenset({"project"}),
    "intake": frozenset({"intake"}),
    "api": frozenset({"api"}),
    "ops": frozenset({"ops"}),
    "forward": frozenset({"forward"}),
    "ui": frozenset({"ui"}),
    "wiring": frozenset({"app", "cli", "runtime", "send", "retention", "reconcile", "scf", "__main__"}),
}

#: The layers each layer may import besides its own. The wiring on top builds the process
#: from every part, so it may import anything.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "verify": frozenset({"base"}),
    "journal": frozenset({"base"}),
    "project": frozenset({"base", "verify"}),  # parse() recognises the body it is given (verify/shape.py)
    "intake": frozenset({"base", "verify", "journal"}),
    "api": frozenset({"base", "project", "journal"}),
    "ops": frozenset({"base", "project", "journal", "api"}),  # readiness reads the spool and the lag; api.deps
    "forward": frozenset({"base"}),  # events go out from the store; sinks know no other layer
    "ui": frozenset({"base", "project", "journal", "api", "ops"}),  # pages render the API's answers and health
    "wiring": frozenset(LAYERS),
}

LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def on_disk() -> set[str]:
    """The package's top-level modules and folders, as named in ``LAYERS``."""
    names = {path.stem for path in SOURCE.glob("*.py")}
    return names | {path.name for path in SOURCE.iterdir() if (path / "__init__.py").is_file()}


def module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of a source file, and whether it is a package's ``__init__``."""
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def top_level(module: str) -> str:
    """``mps_callback.journal.entry`` -> ``journal``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported(module: str, is_package: bool, source: str) -> list[tuple[int, str]]:
    """(line, module) of every ``mps_callback`` module ``source`` imports, wherever the import stands."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            if base == PACKAGE:  # from mps_callback import metrics, __version__
                found += [(node.lineno, _from_package(alias.name)) for alias in node.names]
            else:
                found.append((node.lineno, base))
    return [(line, name) for line, name in found if name == PACKAGE or name.startswith(PACKAGE + ".")]


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The module a ``from`` import names, relative ones (``from ..journal import x``) resolved."""
    if level == 0:
        return name or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    anchor = package[: len(package) - (level - 1)]
    return ".".join([*anchor, name] if name else anchor)


def _from_package(name: str) -> str:
    """``from mps_callback import metrics`` imports the module ``metrics``; ``__version__`` is the package's own."""
    return f"{PACKAGE}.{name}" if name in on_disk() else PACKAGE


def violations(module: str, is_package: bool, source: str) -> list[str]:
    """What ``source`` (the module ``module``) imports against ``MAY_IMPORT``, one message each."""
    layer = LAYER_OF.get(top_level(module))
    if layer is None:
        return [f"{module} is in no layer: add {top_level(module)!r} to LAYERS and MAY_IMPORT in tests/test_layers.py"]
    problems = []
    for line, target in imported(module, is_package, source):
        target_layer = LAYER_OF.get(top_level(target))
        if target_layer is None:
            problems.append(f"{module}:{line} imports {target}, which is in no layer of LAYERS")
        elif target_layer != layer and target_layer not in MAY_IMPORT[layer]:
            allowed = ", ".join([layer, *sorted(MAY_IMPORT[layer])])
            problems.append(f"{module}:{line} imports {target} ({target_layer}); rule: {layer} imports only {allowed}")
    return problems


def test_no_import_runs_up_a_layer() -> None:
    problems: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        module, is_package = module_name(path)
        problems += violations(module, is_package, path.read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


def test_the_table_names_each_part_of_the_package_once() -> None:
    named = [name for names in LAYERS.values() for name in names]
    assert len(named) == len(set(named)), "a name is in two layers"
    assert set(named) == on_disk(), f"stale: {set(named) - on_disk()}; missing: {on_disk() - set(named)}"
    assert set(MAY_IMPORT) == set(LAYERS)


@pytest.mark.parametrize(
    ("module", "is_package", "source", "expected"),
    [
        ("mps_callback.journal.entry", False, "from mps_callback.intake.envelope import decode", "intake"),
        ("mps_callback.project.parse", False, "from mps_callback.journal import entry", "journal"),
        ("mps_callback.project.parse", False, "import mps_callback.intake.accept as accept", "intake"),
        ("mps_callback.verify.shape", False, "def f():\n    from mps_callback.project import parse\n", "project"),
        (
            "mps_callback.metrics",
            False,
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mps_callback.verify import shape\n",
            "verify",
        ),
        ("mps_callback.config", False, "from mps_callback import project", "project"),
        ("mps_callback.journal.write", False, "from ..intake.accept import Intake", "intake"),
        ("mps_callback.store", True, "from .. import ops", "ops"),
        ("mps_callback.api.tasks", False, "from mps_callback.intake.http import CallbackDoor", "intake"),
        ("mps_callback.intake.http", False, "from mps_callback.reports import pages", "in no layer"),
        ("mps_callback.dashboard.pages", False, "import json", "in no layer"),
        ("mps_callback.forward.outbox", False, "from mps_callback.project import merge", "project"),
    ],
)
def test_the_check_reports_a_forbidden_import(module: str, is_package: bool, source: str, expected: str) -> None:
    problems = violations(module, is_package, source)
    assert len(problems) == 1 and module in problems[0] and expected in problems[0], problems


@pytest.mark.parametrize(
    ("module", "is_package", "source"),
    [
        ("mps_callback.intake.accept", False, "from mps_callback.journal.entry import JournalEntry"),
        ("mps_callback.verify.shape", False, "from mps_callback.mps import Shape\nfrom mps_callback import errors"),
        ("mps_callback.journal.drain", False, "from .write import write_rows\nfrom ..store.errors import describe"),
        ("mps_callback.metrics", False, "from mps_callback import __version__"),
        ("mps_callback.cli", False, "def parse():\n    from mps_callback.project.parse import parse\n"),
    ],
)
def test_the_check_lets_a_downward_import_pass(module: str, is_package: bool, source: str) -> None:
    assert violations(module, is_package, source) == []
