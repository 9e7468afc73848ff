"""`run_sql`: read-only enforced by the database connection, on both databases."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from modelscan.db.query import index_info, run_sql
from modelscan.db.store import Store
from modelscan.errors import ReadOnlyViolation, StoreError

WRITES = [
    "DELETE FROM hosts",
    "UPDATE hosts SET name = 'x'",
    "INSERT INTO hosts (name, first_seen) VALUES ('x', CURRENT_TIMESTAMP)",
    "CREATE TABLE scratch (a INTEGER)",
    "DROP VIEW blob_copies",
    "WITH gone AS (DELETE FROM hosts RETURNING name) SELECT * FROM gone",
]
SMUGGLED = [  # tricks to get a second statement or a writable transaction
    "SELECT 1; DELETE FROM hosts",
    "COMMIT; DELETE FROM hosts",
    "SET TRANSACTION READ WRITE",
    "PRAGMA query_only = 0",
    "ATTACH DATABASE 'other.sqlite' AS other",
]


@pytest.fixture
def seeded(store: Store) -> Store:
    """An index with one host row."""
    store.start_run("civitai", params={})
    return store


def _hosts(url: str) -> list[tuple[object, ...]]:
    return run_sql(url, "SELECT name FROM hosts").rows


@pytest.mark.parametrize("statement", WRITES)
def test_writes_are_refused(seeded: Store, db_url: str, statement: str) -> None:
    """Every kind of write is refused by the connection and changes nothing."""
    if db_url.startswith("sqlite") and statement.startswith("WITH"):
        pytest.skip("SQLite has no data-modifying CTEs")
    with pytest.raises(ReadOnlyViolation, match="refused: this statement writes"):
        run_sql(db_url, statement)
    assert _hosts(db_url) == [("civitai",)]


@pytest.mark.parametrize("statement", SMUGGLED)
def test_smuggled_statements_change_nothing(
    seeded: Store,
    db_url: str,
    statement: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Multi-statement strings and mode switches either fail or write nothing."""
    monkeypatch.chdir(tmp_path)
    with contextlib.suppress(StoreError):
        run_sql(db_url, statement)
    assert _hosts(db_url) == [("civitai",)]
    assert not (tmp_path / "other.sqlite").exists()


def test_write_flag_commits(seeded: Store, db_url: str) -> None:
    """With write=True the statement runs and is committed."""
    result = run_sql(db_url, "UPDATE hosts SET first_seen = first_seen", write=True)
    assert (result.columns, result.rowcount) == ([], 1)


def test_sql_errors_are_one_line(seeded: Store, db_url: str) -> None:
    """A failing statement is a StoreError with the database's first line."""
    with pytest.raises(StoreError, match="SQL error: .*no_such_table") as err:
        run_sql(db_url, "SELECT * FROM no_such_table")
    assert "\n" not in str(err.value)


def test_index_info_counts_rows(seeded: Store, db_url: str) -> None:
    """index_info reports the revision and one count per table."""
    info = index_info(db_url)
    assert info.revision == info.head
    assert (info.tables["hosts"], info.tables["crawl_runs"], info.tables["files"]) == (
        1,
        1,
        0,
    )
