"""Typed loads and saves of ``modelscan link``: what changed, the watermark, edges.

``modelscan/lineage/infer.py`` decides the edges; this module only reads what
was seen since a watermark, writes edges on the lineage natural key
(:data:`~modelscan.lineage.rows.LINEAGE_KEY`), and keeps the run's state in
``crawl_state`` (host ``local``, key ``link``).

Example:
    >>> replace_edges(conn, ("identical-hash",), shas, rows, at)  # doctest: +SKIP
    0
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update

from modelscan.db import runs
from modelscan.db.lineage_rows import as_datetime, edge_row
from modelscan.db.portable import chunks
from modelscan.db.tables import BLOBS, FILES, LINEAGE, REPOS, STATE
from modelscan.db.upsert import upsert
from modelscan.lineage.rows import LINEAGE_KEY, EdgeRow, LinkWatermark, Resolved
from modelscan.refs import LOCAL_HOST, repo_ref_forms

STATE_HOST, STATE_KEY = LOCAL_HOST, "link"
_UPDATED = (
    "child_sha256",
    "parent_repo_id",
    "parent_sha256",
    "confidence",
    "evidence",
    "last_seen",
)


# --- the watermark --------------------------------------------------------------------


def load_link_state(conn: Connection) -> LinkWatermark | None:
    """Return what the last ``link`` run saved, or None before the first run."""
    stmt = select(STATE.c.cursor, STATE.c.updated_at).where(
        STATE.c.host == STATE_HOST, STATE.c.key == STATE_KEY
    )
    row = conn.execute(stmt).first()
    if row is None or not row.cursor:
        return None
    state: dict[str, Any] = json.loads(row.cursor)
    mark = state.get("watermark")
    return LinkWatermark(
        state=state,
        watermark=datetime.fromisoformat(mark) if mark else None,
        finished_at=row.updated_at,
    )


def save_link_state(conn: Connection, state: dict[str, Any], at: datetime) -> None:
    """Save a ``link`` run's counts and watermark (JSON) for the next run."""
    runs.ensure_host(conn, STATE_HOST, at)
    runs.save_cursor(conn, STATE_HOST, STATE_KEY, json.dumps(state), None, at=at)


def newest_sighting(conn: Connection) -> datetime | None:
    """The newest sighting in the index (edges written by link itself excluded)."""
    stmts = [
        select(func.max(col))
        for col in (
            FILES.c.first_seen,
            BLOBS.c.first_seen,
            BLOBS.c.fingerprinted_at,
            REPOS.c.first_seen,
        )
    ]
    stmts.append(
        select(func.max(LINEAGE.c.first_seen)).where(LINEAGE.c.child_sha256.is_(None))
    )
    found = [as_datetime(conn.execute(stmt).scalar()) for stmt in stmts]
    values = [v for v in found if v is not None]
    return max(values) if values else None


def touched_blobs(conn: Connection, since: datetime | None) -> set[str]:
    """Blobs with a hosted occurrence or a fingerprint seen since ``since``."""
    hosted = (
        select(FILES.c.sha256)
        .join(REPOS, REPOS.c.id == FILES.c.repo_id)
        .where(REPOS.c.host != LOCAL_HOST, FILES.c.sha256.is_not(None))
    )
    printed = select(BLOBS.c.sha256).where(BLOBS.c.fingerprinted_at.is_not(None))
    if since is not None:
        hosted = hosted.where(FILES.c.first_seen >= since)
        printed = printed.where(BLOBS.c.fingerprinted_at >= since)
    return {s for (s,) in conn.execute(hosted.distinct())} | {
        s for (s,) in conn.execute(printed)
    }


# --- edges ----------------------------------------------------------------------------


def replace_edges(
    conn: Connection,
    sources: Sequence[str],
    child_shas: Iterable[str],
    rows: Sequence[EdgeRow],
    at: datetime,
) -> int:
    """Make the ``sources`` edges of ``child_shas`` exactly ``rows``; return deletions.

    Rows are upserted on the lineage natural key, so a second run with the same
    index changes nothing but ``last_seen``.
    """
    wanted = {r.key for r in rows}
    stale = []
    for part in chunks(sorted(set(child_shas))):
        stmt = select(LINEAGE).where(
            LINEAGE.c.child_sha256.in_(part), LINEAGE.c.source.in_(list(sources))
        )
        stale += [r.id for r in conn.execute(stmt) if edge_row(r).key not in wanted]
    for ids in chunks(stale):
        conn.execute(delete(LINEAGE).where(LINEAGE.c.id.in_(ids)))
    written = [{**r.values(), "first_seen": at, "last_seen": at} for r in rows]
    upsert(conn, LINEAGE, written, key=list(LINEAGE_KEY), update=list(_UPDATED))
    return len(stale)


def _new_repo_refs(conn: Connection, since: datetime) -> list[str]:
    """Reference spellings of the repos first seen since ``since``."""
    stmt = select(REPOS.c.host, REPOS.c.host_id, REPOS.c.url).where(
        REPOS.c.first_seen >= since, REPOS.c.host != LOCAL_HOST
    )
    out: list[str] = []
    for r in conn.execute(stmt):
        out += repo_ref_forms(r.host, r.host_id, r.url)
    return out


def unresolved_edges(conn: Connection, since: datetime | None) -> list[EdgeRow]:
    """Edges without a parent repo that a run since ``since`` may now resolve.

    All of them on a full run; else those written or inferred since, and those
    naming a repo first seen since.
    """
    base = select(LINEAGE).where(LINEAGE.c.parent_repo_id.is_(None))
    if since is None:
        return [edge_row(r) for r in conn.execute(base.order_by(LINEAGE.c.id))]
    recent = or_(LINEAGE.c.first_seen >= since, LINEAGE.c.child_sha256.is_not(None))
    found = {r.id: edge_row(r) for r in conn.execute(base.where(recent))}
    for part in chunks(_new_repo_refs(conn, since)):
        rows = conn.execute(base.where(LINEAGE.c.parent_ref.in_(part)))
        found.update({r.id: edge_row(r) for r in rows})
    return [found[i] for i in sorted(found)]


def set_edge_parents(conn: Connection, parents: dict[int, Resolved]) -> None:
    """Point edges (by id) at the parent blob and repo found for them."""
    for lid, found in sorted(parents.items()):
        values: dict[str, Any] = {"parent_repo_id": found.repo_id}
        if found.sha256 is not None:
            values["parent_sha256"] = found.sha256
        conn.execute(update(LINEAGE).where(LINEAGE.c.id == lid).values(**values))
