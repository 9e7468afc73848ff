"""Read the index a CLI test wrote (a module name no other test folder uses)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from modelscan.db.engine import open_store


def query(db: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one SQL statement on the index at ``db``."""

    def run(conn: Connection) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in conn.execute(text(sql))]

    with open_store(db) as store:
        return list(store.execute(run))
