"""The import rules of the layout (issue 9; README "Architecture"), read from the modules' AST:
the ground floor (hotline/) imports nothing of the project, the benchmarks import no tests, and
the simulated components (test support) are imported by tests and benchmarks only."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: every top-level package of the project besides the ground floor itself
PROJECT = {"storage", "ivr", "callback_scheduler", "forwarder", "http_api", "sandbox", "ami",
           "service", "bench", "tests", "bad_ratings", "reports", "console"}
SIMULATED = ("ivr.agi.simulated", "forwarder.simulated")


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _modules(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def test_the_rules_see_imports() -> None:
    # a parser that found nothing would make every rule below pass
    assert "hotline.settings" in set(_imports(ROOT / "service" / "cli.py"))


def test_the_ground_floor_imports_nothing_of_the_project() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules("hotline")
        for name in _imports(path)
        if name.split(".")[0] in PROJECT
    ]
    assert offenders == []


def test_the_benchmarks_import_no_tests() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules("bench")
        for name in _imports(path)
        if name.split(".")[0] == "tests"
    ]
    assert offenders == []


def test_only_tests_and_benchmarks_use_the_simulated_components() -> None:
    product = [p for p in ROOT.glob("*/**/*.py")
               if p.relative_to(ROOT).parts[0] not in {"tests", "bench", ".venv"}]
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in product
        for name in _imports(path)
        if name.startswith(SIMULATED) and path.with_suffix("").relative_to(ROOT).as_posix()
        .replace("/", ".") not in SIMULATED
    ]
    assert offenders == []
