"""Ad-hoc SQL over the index (``modelscan sql``) and its description (``db info``).

Read-only is enforced by the database connection, not by parsing the SQL:
SQLite files are opened with ``mode=ro`` (the SQL cannot turn it off) and no
ATTACH allowed; PostgreSQL runs the statement in a ``READ ONLY`` transaction on a
session whose default is read-only, as a single prepared statement (so a
``COMMIT; ...`` cannot smuggle a second statement past it), then discards the
connection.

Example:
    >>> run_sql(URL, "SELECT count(*) FROM files").rows  # doctest: +SKIP
    [(2000000,)]
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError

from modelscan.db.engine import hide_password, make_engine
from modelscan.db.migrate import current_revision, ensure_schema, head_revision
from modelscan.db.store import first_line, is_read_only_error
from modelscan.errors import ReadOnlyViolation, StoreError


@dataclass(frozen=True, slots=True)
class SqlResult:
    """Column names and rows of one statement (no rows for a write)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    rowcount: int = -1


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """What ``modelscan db info`` prints."""

    url: str  # password hidden
    dialect: str
    revision: str | None
    head: str
    tables: dict[str, int]


def run_sql(url: str, sql: str, *, write: bool = False) -> SqlResult:
    """Run one SQL statement on the index and return its result.

    Args:
        url: the index URL.
        sql: exactly one statement.
        write: allow statements that write (committed on success).

    Returns:
        The columns and rows.

    Raises:
        ReadOnlyViolation: the statement writes and ``write`` is not set.
        StoreError: the statement fails (syntax, unknown table, ...).
    """
    engine = make_engine(url, read_only=not write)
    try:
        raw = engine.raw_connection()
    except DBAPIError as exc:
        raise StoreError(
            f"cannot open {hide_password(url)}: {first_line(exc)}"
        ) from exc
    try:
        return _execute(
            raw, sql, write=write, postgres=engine.dialect.name == "postgresql"
        )
    finally:
        raw.invalidate()  # a connection the user's SQL touched is not pooled again
        engine.dispose()


def _execute(raw: Any, sql: str, *, write: bool, postgres: bool) -> SqlResult:
    dbapi = raw.dbapi_connection
    if postgres:
        dbapi.autocommit = True  # transactions are begun explicitly below
    cur = dbapi.cursor()
    try:
        if postgres:
            cur.execute("BEGIN READ WRITE" if write else "BEGIN READ ONLY")
            cur.execute(sql, prepare=True)  # one statement only: extended protocol
        else:
            cur.execute("BEGIN")
            cur.execute(sql)  # sqlite3 refuses more than one statement
        columns = [d[0] for d in cur.description] if cur.description else []
        rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
        result = SqlResult(columns, rows, cur.rowcount)
        cur.execute("COMMIT" if write else "ROLLBACK")
        return result
    except Exception as exc:
        _rollback(cur)
        if _dbapi_error(exc) and is_read_only_error(exc):
            raise ReadOnlyViolation(
                f"refused: this statement writes and `modelscan sql` is read-only "
                f"({first_line(exc)}); add --write to allow it"
            ) from exc
        if _dbapi_error(exc):
            raise StoreError(f"SQL error: {first_line(exc)}") from exc
        raise
    finally:
        cur.close()


def _dbapi_error(exc: BaseException) -> bool:
    import sqlite3

    import psycopg

    return isinstance(exc, sqlite3.Error | psycopg.Error)


def _rollback(cur: Any) -> None:
    with contextlib.suppress(Exception):  # the connection is discarded anyway
        cur.execute("ROLLBACK")


def index_info(url: str) -> IndexInfo:
    """Describe the index at ``url``: revision, head, row counts per table."""
    from modelscan.db.store import Store

    engine = make_engine(url, read_only=True)
    try:
        revision = current_revision(engine)
        counts: dict[str, int] = {}
        if revision is not None:
            ensure_schema(engine, upgrade=False)
            counts = Store(engine, url=url, read_only=True).row_counts()
        return IndexInfo(
            hide_password(url), engine.dialect.name, revision, head_revision(), counts
        )
    finally:
        engine.dispose()
