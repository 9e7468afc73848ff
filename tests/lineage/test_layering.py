"""The layers' import rules (ARCHITECTURE.md), checked on the source files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    """Every module a file imports (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def sources(*folders: str) -> list[Path]:
    """The Python files of the package folders."""
    return [p for f in folders for p in sorted((ROOT / f).rglob("*.py"))]


@pytest.mark.parametrize("folder", ["modelscan", "scanner", "registry"])
def test_no_sqlalchemy_outside_db(folder: str) -> None:
    """Only db/ runs SQL: nothing else imports SQLAlchemy."""
    bad = [
        p
        for p in sources(folder)
        if any(m.startswith("sqlalchemy") for m in imports(p))
    ]
    assert bad == []


def test_no_numpy_in_db() -> None:
    """db/ loads and saves rows; the numbers are scanner/'s and lineage's."""
    bad = [p for p in sources("db") if any(m.startswith("numpy") for m in imports(p))]
    assert bad == []


def test_lineage_imports_no_db() -> None:
    """modelscan/lineage/ gets its rows handed in; it imports no db module."""
    bad = [
        p
        for p in sources("modelscan/lineage")
        if any(m.startswith("modelscan.db") for m in imports(p))
    ]
    assert bad == []


def test_db_imports_only_the_rows_of_lineage() -> None:
    """db/ may build lineage's typed rows, and nothing else of modelscan.lineage."""
    used = {
        m
        for p in sources("db")
        for m in imports(p)
        if m.startswith("modelscan.lineage")
    }
    assert used <= {"modelscan.lineage.rows"}


def test_architecture_names_files_that_exist() -> None:
    """Every source path ARCHITECTURE.md names is a file in the repository."""
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:[\w/]+/)?[\w]+\.(?:py|sql))`", text))
    named |= set(
        re.findall(r"(?<![\w/])((?:cli|lineage|db|registry|scanner)/[\w/]+\.py)", text)
    )
    prefixes = {
        "cli/": "modelscan/cli/",
        "lineage/": "modelscan/lineage/",
        "distributed/": "modelscan/distributed/",
    }
    missing = []
    for path in sorted(named):
        full = next(
            (
                full + path[len(p) :]
                for p, full in prefixes.items()
                if path.startswith(p)
            ),
            path,
        )
        if "/" in path and not (ROOT / full).is_file():
            missing.append(path)
    assert missing == []
