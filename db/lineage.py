"""Lineage edges: declared parents from listings, resolved to repos when known.

A declared parent is kept as the text the host gave (``parent_ref``: "hf:org/name",
"civitai:4384", or free text such as "SD 1.5"). When the text names a repo in the
index, ``parent_repo_id`` points at it; references to repos crawled later are
resolved when those repos arrive.

Example:
    >>> parse_ref("hf:org/name")
    ('huggingface', 'org/name')
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, tuple_, update

from modelscan.db.fileops import chunks, clean_text
from modelscan.db.tables import LINEAGE, REPOS
from modelscan.records import Listing

REF_PREFIXES = {
    "hf": "huggingface",
    "huggingface": "huggingface",
    "civitai": "civitai",
    "replicate": "replicate",
}
HOST_PREFIX = {"huggingface": "hf"}


def parse_ref(ref: str) -> tuple[str, str] | None:
    """Return (host, host_id) named by a reference like "hf:org/name", else None."""
    prefix, sep, rest = ref.partition(":")
    host = REF_PREFIXES.get(prefix.strip().lower())
    if not sep or host is None or not rest.strip():
        return None
    return host, rest.strip()


def ref_for(host: str, host_id: str) -> str:
    """Return the canonical reference text of a repo ("hf:org/name")."""
    return f"{HOST_PREFIX.get(host, host)}:{host_id}"


def _resolve(conn: Connection, refs: set[str]) -> dict[str, int]:
    wanted = {ref: parsed for ref in refs if (parsed := parse_ref(ref))}
    out: dict[str, int] = {}
    pairs = sorted(set(wanted.values()))
    for part in chunks(pairs):
        stmt = select(REPOS.c.host, REPOS.c.host_id, REPOS.c.id).where(
            tuple_(REPOS.c.host, REPOS.c.host_id).in_(list(part))
        )
        found = {(r.host, r.host_id): r.id for r in conn.execute(stmt)}
        out.update({ref: found[p] for ref, p in wanted.items() if p in found})
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
    rows: dict[tuple[int, str, str, str], dict[str, Any]] = {}
    for rid, listing in repos:
        for ref in listing.lineage:
            key = (rid, clean_text(ref.parent), ref.relation, ref.source)
            rows.setdefault(
                key,
                {
                    "child_repo_id": rid,
                    "parent_ref": key[1],
                    "relation": ref.relation,
                    "source": ref.source,
                    "first_seen": at,
                    "last_seen": at,
                },
            )
    existing: dict[tuple[int, str, str, str], int] = {}
    for part in chunks(sorted({rid for rid, _ in repos})):
        stmt = select(
            LINEAGE.c.id,
            LINEAGE.c.child_repo_id,
            LINEAGE.c.parent_ref,
            LINEAGE.c.relation,
            LINEAGE.c.source,
        ).where(LINEAGE.c.child_repo_id.in_(part))
        existing.update(
            {
                (r.child_repo_id, r.parent_ref, r.relation, r.source): r.id
                for r in conn.execute(stmt)
            }
        )
    new = [row for key, row in rows.items() if key not in existing]
    if new:
        resolved = _resolve(conn, {row["parent_ref"] for row in new})
        for row in new:
            row["parent_repo_id"] = resolved.get(row["parent_ref"])
        conn.execute(insert(LINEAGE), new)
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
    refs = [t["ref"] for t in targets]
    pending: set[str] = set()
    for part in chunks(refs):
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
