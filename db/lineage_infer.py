"""``modelscan link``: lineage edges inferred from what the index holds.

Edges written here always name the child file (``child_sha256``) and the repo
where that file was first seen (``child_repo_id``); the parent is a blob
(``parent_ref`` = ``sha256:<hex>``) and the repo where it was first seen:

- ``copy`` / ``identical-hash``: every other hosted repo holding the same bytes
  points at the first repo seen holding them (confidence 1).
- ``conversion`` / ``same-content`` or ``same-weights``: a file with the same
  ``content_id`` (or ``weights_id``) and other bytes points at the earliest file
  of that family, unless both were first seen in the same repo (confidence 1).
- ``finetune`` (or ``quantized``/``conversion`` when the dtypes differ) /
  ``weight-similarity``: a fingerprinted file points at the earlier
  fingerprinted file with the same matrix shapes whose sketches correlate best,
  if the median correlation over matrices is at least 0.5 (the confidence;
  per-layer figures in ``evidence``).
- ``declared-file``: hashes and names a file states about its base (kohya
  ``ss_new_sd_model_hash``/``ss_sd_model_hash``, GGUF ``general.base_model.*``,
  ``general.source.*``), resolved to a blob or repo when the index has it.

Declared references of hosts (``lineage`` rows without ``child_sha256``) whose
parent has since been crawled get their ``parent_repo_id``. Local files (host
``local``) are the user's own copies: they lend their fingerprints to the blobs
but are neither children nor parents.

The run is incremental: only files, blobs and repos seen since the watermark of
the previous run (kept in ``crawl_state``, host ``local``, key ``link``) are
looked at, and each step is idempotent, so a killed run is simply run again.

Example:
    >>> stats = link(open_store())  # doctest: +SKIP
    >>> stats.summary()  # doctest: +SKIP
    'link: 12 blobs; edges: 3 copy, 1 conversion, 1 similarity, 0 file claims; ...'
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, or_, select, update

from modelscan.db import lineage_refs as refs
from modelscan.db.fileops import chunks
from modelscan.db.lineage_evidence import (
    claim_edges,
    conversion_edges,
    edge,
    similarity_edges,
)
from modelscan.db.lineage_refs import Holdings, load_holdings
from modelscan.db.store import Store
from modelscan.db.tables import BLOBS, FILES, LINEAGE, REPOS, STATE
from modelscan.db.upsert import upsert

logger = logging.getLogger(__name__)


STATE_HOST, STATE_KEY = "local", "link"
OVERLAP = timedelta(hours=1)  # rows committed late with an earlier timestamp
BLOB_CHUNK = 200  # touched blobs per write transaction
INFERRED_SOURCES = (
    "identical-hash",
    "same-content",
    "same-weights",
    "weight-similarity",
)


@dataclass
class LinkStats:
    """What one ``link`` run looked at and wrote."""

    since: datetime | None  # the watermark used (None: everything)
    watermark: datetime | None = None  # saved for the next run
    blobs: int = 0  # blobs seen since the watermark
    copy: int = 0  # edges written, by kind
    conversion: int = 0
    similarity: int = 0
    claims: int = 0
    resolved: int = 0  # declared references pointed at a crawled repo
    removed: int = 0  # inferred edges no longer supported, deleted
    seconds: float = 0.0
    _started: float = field(default_factory=time.monotonic, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in (
                "blobs",
                "copy",
                "conversion",
                "similarity",
                "claims",
                "resolved",
                "removed",
            )
        }
        out["since"] = self.since.isoformat() if self.since else None
        out["watermark"] = self.watermark.isoformat() if self.watermark else None
        out["seconds"] = round(self.seconds, 3)
        return out

    def summary(self) -> str:
        """Return one line for a terminal."""
        return (
            f"link: {self.blobs} blobs; edges: {self.copy} copy, {self.conversion} "
            f"conversion, {self.similarity} similarity, {self.claims} file claims; "
            f"{self.resolved} declared parents resolved, {self.removed} stale edges "
            f"removed; {self.seconds:.1f}s"
        )


def as_store(target: Store | Engine) -> Store:
    """Accept a Store or a bare Engine."""
    if isinstance(target, Store):
        return target
    return Store(target, url=target.url.render_as_string(hide_password=False))


def link(
    target: Store | Engine,
    *,
    since: datetime | None = None,
    full: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> LinkStats:
    """Infer lineage edges from files, blobs and repos seen since the last run.

    Args:
        target: the index.
        since: look at what was seen from this time on (default: the watermark
            of the previous run; everything on the first run).
        full: ignore the watermark and look at everything.
        clock: the current time (tests pass a fixed one).

    Returns:
        The run's counts; the new watermark is saved in the index.

    Raises:
        StoreError: the index failed.
    """
    store = as_store(target)
    if since is None and not full:
        since = store.execute(_load_watermark)
    stats = LinkStats(since=since)
    at = clock()
    newest = store.execute(_newest_timestamp)
    touched = sorted(store.execute(lambda c: _touched_blobs(c, since)))
    stats.blobs = len(touched)
    for part in chunks(touched, BLOB_CHUNK):
        counts = store.execute(partial(_link_blobs, shas=part, at=at), write=True)
        for key, n in counts.items():
            setattr(stats, key, getattr(stats, key) + n)
    stats.resolved = store.execute(lambda c: _resolve_all(c, since), write=True)
    if newest is not None:
        stats.watermark = min(newest, at) - OVERLAP
        store.execute(lambda c: _save_watermark(c, stats, at), write=True)
    stats.seconds = time.monotonic() - stats._started
    logger.info("%s", stats.summary())
    return stats


# --- watermark ------------------------------------------------------------------------


def _load_watermark(conn: Connection) -> datetime | None:
    stmt = select(STATE.c.cursor).where(
        STATE.c.host == STATE_HOST, STATE.c.key == STATE_KEY
    )
    text = conn.execute(stmt).scalar()
    if not text:
        return None
    value = json.loads(text).get("watermark")
    return datetime.fromisoformat(value) if value else None


def load_link_state(conn: Connection) -> dict[str, Any] | None:
    """Return what the last ``link`` run saved (its counts and watermark), or None."""
    stmt = select(STATE.c.cursor, STATE.c.updated_at).where(
        STATE.c.host == STATE_HOST, STATE.c.key == STATE_KEY
    )
    row = conn.execute(stmt).first()
    if row is None or not row.cursor:
        return None
    out: dict[str, Any] = json.loads(row.cursor)
    out["finished_at"] = row.updated_at.isoformat()
    return out


def _save_watermark(conn: Connection, stats: LinkStats, at: datetime) -> None:
    from modelscan.db.crawl import ensure_host, save_cursor

    ensure_host(conn, STATE_HOST, at)
    save_cursor(conn, STATE_HOST, STATE_KEY, json.dumps(stats.as_dict()), None, at=at)


def _newest_timestamp(conn: Connection) -> datetime | None:
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
    found = [conn.execute(stmt).scalar() for stmt in stmts]
    values = [v for v in map(refs.as_datetime, found) if v is not None]
    return max(values) if values else None


def _touched_blobs(conn: Connection, since: datetime | None) -> set[str]:
    hosted = (
        select(FILES.c.sha256)
        .join(REPOS, REPOS.c.id == FILES.c.repo_id)
        .where(REPOS.c.host != refs.LOCAL_HOST, FILES.c.sha256.is_not(None))
    )
    printed = select(BLOBS.c.sha256).where(BLOBS.c.fingerprinted_at.is_not(None))
    if since is not None:
        hosted = hosted.where(FILES.c.first_seen >= since)
        printed = printed.where(BLOBS.c.fingerprinted_at >= since)
    return {s for (s,) in conn.execute(hosted.distinct())} | {
        s for (s,) in conn.execute(printed)
    }


# --- writing edges --------------------------------------------------------------------


def _link_blobs(conn: Connection, shas: Sequence[str], at: datetime) -> Counter[str]:
    """Rewrite every inferred edge of the blobs ``shas``; return counts by kind."""
    out: Counter[str] = Counter()
    holdings = load_holdings(conn, shas)
    rows = copy_edges(holdings, shas)
    out["copy"] += len(rows)
    out["removed"] += replace_edges(conn, ("identical-hash",), shas, rows, at)
    family, rows = conversion_edges(conn, shas)
    out["conversion"] += len(rows)
    sources = ("same-content", "same-weights")
    out["removed"] += replace_edges(conn, sources, family, rows, at)
    children, rows = similarity_edges(conn, shas)
    out["similarity"] += len(rows)
    out["removed"] += replace_edges(conn, ("weight-similarity",), children, rows, at)
    rows = claim_edges(conn, shas, holdings)
    out["claims"] += len(rows)
    out["removed"] += replace_edges(conn, ("declared-file",), shas, rows, at)
    return out


def replace_edges(
    conn: Connection,
    sources: Sequence[str],
    child_shas: Iterable[str],
    rows: list[dict[str, Any]],
    at: datetime,
) -> int:
    """Make the ``sources`` edges of ``child_shas`` exactly ``rows``; return deletions.

    Rows are upserted on the lineage table's unique key, so a second run with
    the same index changes nothing but ``last_seen``.
    """
    wanted = {
        (r["child_repo_id"], r["parent_ref"], r["relation"], r["source"]) for r in rows
    }
    stale = []
    for part in chunks(sorted(set(child_shas))):
        stmt = select(
            LINEAGE.c.id,
            LINEAGE.c.child_repo_id,
            LINEAGE.c.parent_ref,
            LINEAGE.c.relation,
            LINEAGE.c.source,
        ).where(LINEAGE.c.child_sha256.in_(part), LINEAGE.c.source.in_(list(sources)))
        stale += [
            r.id
            for r in conn.execute(stmt)
            if (r.child_repo_id, r.parent_ref, r.relation, r.source) not in wanted
        ]
    for part in chunks(stale):
        conn.execute(delete(LINEAGE).where(LINEAGE.c.id.in_(part)))
    written = [{**r, "first_seen": at, "last_seen": at} for r in rows]
    upsert(
        conn,
        LINEAGE,
        written,
        key=["child_repo_id", "parent_ref", "relation", "source"],
        update=[
            "child_sha256",
            "parent_repo_id",
            "parent_sha256",
            "confidence",
            "evidence",
            "last_seen",
        ],
    )
    return len(stale)


def copy_edges(holdings: Holdings, shas: Iterable[str]) -> list[dict[str, Any]]:
    """Every other repo holding the same bytes points at the first one seen."""
    rows = []
    for sha in shas:
        origin = holdings.origin.get(sha)
        if origin is None:
            continue
        for rid in sorted(holdings.repos[sha] - {origin.repo_id}):
            rows.append(
                edge(
                    rid,
                    sha,
                    sha,
                    origin.repo_id,
                    "copy",
                    "identical-hash",
                    1.0,
                    {"first_seen": origin.first_seen.isoformat()},
                )
            )
    return rows


# --- declared references --------------------------------------------------------------


def _resolve_all(conn: Connection, since: datetime | None) -> int:
    """Point unresolved references at repos and blobs that are now in the index."""
    base = select(LINEAGE.c.id, LINEAGE.c.parent_ref, LINEAGE.c.parent_sha256).where(
        LINEAGE.c.parent_repo_id.is_(None)
    )
    todo: dict[int, Any] = {}
    if since is None:
        todo.update({r.id: r for r in conn.execute(base)})
    else:
        recent = or_(LINEAGE.c.first_seen >= since, LINEAGE.c.child_sha256.is_not(None))
        todo.update({r.id: r for r in conn.execute(base.where(recent))})
        for part in chunks(refs.new_repo_refs(conn, since)):
            todo.update(
                {
                    r.id: r
                    for r in conn.execute(base.where(LINEAGE.c.parent_ref.in_(part)))
                }
            )
    resolved = 0
    for lid, row in sorted(todo.items()):
        parent_sha, parent_repo = refs.resolve_ref(conn, row.parent_ref)
        if parent_repo is None and (
            parent_sha is None or parent_sha == row.parent_sha256
        ):
            continue
        values: dict[str, Any] = {"parent_repo_id": parent_repo}
        if parent_sha is not None:
            values["parent_sha256"] = parent_sha
        conn.execute(update(LINEAGE).where(LINEAGE.c.id == lid).values(**values))
        resolved += parent_repo is not None
    return resolved
