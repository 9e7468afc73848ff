"""The one upsert helper: each dialect's native ``INSERT ... ON CONFLICT``.

SQLite (3.24+) and PostgreSQL share the syntax; SQLAlchemy has one ``insert``
per dialect, so the helper picks it by the connection's dialect. Rows are sent
with ``executemany`` (all dicts must have the same keys).

Example:
    >>> upsert(conn, BLOBS, rows, key=["sha256"],
    ...        prefer_old=["autov1"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, func
from sqlalchemy.dialects import postgresql, sqlite

from modelscan.errors import StoreError


def dialect_insert(conn: Connection, table: Table) -> Any:
    """Return the dialect's INSERT construct, which knows ``ON CONFLICT``.

    Raises:
        StoreError: the database is neither SQLite nor PostgreSQL.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"upsert: unsupported database dialect {dialect!r}")


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str] = (),
    prefer_new: Sequence[str] = (),
    prefer_old: Sequence[str] = (),
    index_where: ColumnElement[bool] | None = None,
) -> None:
    """Insert ``rows``; on a conflict on ``key``, update the existing row.

    Args:
        conn: an open connection, inside a transaction.
        table: the target table.
        rows: the rows to write.
        key: the columns of the unique constraint or index that conflicts.
        update: columns overwritten with the new value.
        prefer_new: columns set to the new value unless it is NULL.
        prefer_old: columns filled from the new row only where still NULL.
        index_where: the predicate of a partial unique index used as ``key``.
    """
    rows = _merge_duplicates(rows, key)
    if not rows:
        return
    stmt = dialect_insert(conn, table)
    excluded = stmt.excluded
    set_: dict[str, Any] = {c: excluded[c] for c in update}
    set_.update({c: func.coalesce(excluded[c], table.c[c]) for c in prefer_new})
    set_.update({c: func.coalesce(table.c[c], excluded[c]) for c in prefer_old})
    if set_:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key), index_where=index_where, set_=set_
        )
    else:
        stmt = stmt.on_conflict_do_nothing(
            index_elements=list(key), index_where=index_where
        )
    conn.execute(stmt, list(rows))


def _merge_duplicates(
    rows: Sequence[Mapping[str, Any]], key: Sequence[str]
) -> list[dict[str, Any]]:
    """Merge rows sharing a key (first non-NULL value per column wins).

    One INSERT may not touch the same row twice (PostgreSQL refuses: "ON CONFLICT
    DO UPDATE command cannot affect row a second time").
    """
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        seen = merged.get(k)
        if seen is None:
            merged[k] = dict(row)
        else:
            for col, value in row.items():
                if seen.get(col) is None:
                    seen[col] = value
    return list(merged.values())
