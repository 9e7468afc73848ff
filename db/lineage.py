"""Declared lineage edges: saved from listings, resolved to repos when known.

A declared parent is kept as the text the host gave (``parent_ref``: "hf:org/name",
"civitai:4384", or free text such as "SD 1.5"). When the text names a repo in the
index, ``parent_repo_id`` points at it; references to repos crawled later are
resolved when those repos arrive. Rows are keyed on the lineage natural key
(:data:`modelscan.lineage.rows.LINEAGE_KEY`); references are parsed by
modelscan/refs.py.

Example:
    >>> save_declared_lineage(conn, "huggingface", [(rid, listing)], now)
    ... # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from modelscan.db.lineage_rows import edge_row, find_repos
from modelscan.db.portable import chunks, clean_text
from modelscan.db.tables import LINEAGE, REPOS
from modelscan.lineage.rows import EdgeKey, EdgeRow
from modelscan.records import Listing
from modelscan.refs import parse_ref, ref_for


def _declared(repos: Sequence[tuple[int, Listing]]) -> dict[EdgeKey, EdgeRow]:
    rows: dict[EdgeKey, EdgeRow] = {}
    for rid, listing in repos:
        for ref in listing.lineage:
            row = EdgeRow(
                child_repo_id=rid,
                parent_ref=clean_text(ref.parent),
                relation=ref.relation,
                source=ref.source,
            )
            rows.setdefault(row.key, row)
    return rows


def _existing(conn: Connection, repo_ids: Sequence[int]) -> dict[EdgeKey, int]:
    out: dict[EdgeKey, int] = {}
    for part in chunks(sorted(set(repo_ids))):
        stmt = select(LINEAGE).where(LINEAGE.c.child_repo_id.in_(part))
        out.update({edge_row(r).key: r.id for r in conn.execute(stmt)})
    return out


def save_declared_lineage(
    conn: Connection,
    host: str,
    repos: Sequence[tuple[int, Listing]],
    at: datetime,
    *,
    new_repo_ids: Sequence[int] = (),
) -> None:
    """Insert new declared edges, refresh known ones, resolve pending references."""
    rows = _declared(repos)
    existing = _existing(conn, [rid for rid, _ in repos])
    new = [row for key, row in rows.items() if key not in existing]
    if new:
        wanted = {r.parent_ref: p for r in new if (p := parse_ref(r.parent_ref))}
        found = find_repos(conn, wanted.values())
        conn.execute(
            insert(LINEAGE),
            [
                {
                    **r.values(),
                    "parent_repo_id": found.get(wanted.get(r.parent_ref, ("", ""))),
                    "first_seen": at,
                    "last_seen": at,
                }
                for r in new
            ],
        )
    seen = [{"lid": existing[key], "at": at} for key in rows if key in existing]
    if seen:
        refresh = (
            update(LINEAGE)
            .where(LINEAGE.c.id == bindparam("lid"))
            .values(last_seen=bindparam("at"))
        )
        conn.execute(refresh, seen)
    _resolve_pending(conn, host, new_repo_ids)


def _resolve_pending(conn: Connection, host: str, repo_ids: Sequence[int]) -> None:
    """Point unresolved edges naming one of ``repo_ids`` at it."""
    targets = []
    for part in chunks(sorted(set(repo_ids))):
        stmt = select(REPOS.c.id, REPOS.c.host_id).where(REPOS.c.id.in_(part))
        targets += [
            {"rid": r.id, "ref": ref_for(host, r.host_id)} for r in conn.execute(stmt)
        ]
    if not targets:
        return
    pending: set[str] = set()
    for part in chunks([t["ref"] for t in targets]):
        stmt = select(LINEAGE.c.parent_ref).where(
            LINEAGE.c.parent_repo_id.is_(None), LINEAGE.c.parent_ref.in_(part)
        )
        pending.update(r.parent_ref for r in conn.execute(stmt))
    todo = [t for t in targets if t["ref"] in pending]
    if todo:
        resolve = (
            update(LINEAGE)
            .where(
                LINEAGE.c.parent_repo_id.is_(None),
                LINEAGE.c.parent_ref == bindparam("ref"),
            )
            .values(parent_repo_id=bindparam("rid"))
        )
        conn.execute(resolve, todo)
