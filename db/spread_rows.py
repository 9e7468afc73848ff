"""Typed loads of ``modelscan spread``: same-weights blobs, copies, ranked families.

``modelscan/lineage/spread.py`` computes the measures (takedown cost, survival,
...) from these rows; the ranking of ``spread --top`` reads the rank counters
(db/counters.py) that the SQL view ``spread_copies`` (db/views/) reads, and the
view's other columns for the families ranked.

Example:
    >>> copies = load_copies(conn, [sha])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, desc, distinct, func, or_, select

from modelscan.db.portable import chunks
from modelscan.db.tables import (
    BLOBS,
    FAMILY_BLOBS,
    FAMILY_COUNTS,
    FAMILY_HOSTS,
    FILES,
    HOSTS,
    REPOS,
)
from modelscan.lineage.rows import CopyRow, FamilyRow
from modelscan.refs import LOCAL_HOST


def same_weights_blobs(
    conn: Connection,
    shas: Iterable[str],
    content_id: str | None = None,
    weights_id: str | None = None,
) -> set[str]:
    """Return ``shas`` and every blob sharing one of their content or weights ids."""
    shas = set(shas)
    ids: dict[str, set[str | None]] = {
        "content_id": {content_id},
        "weights_id": {weights_id},
    }
    for part in chunks(sorted(shas)):
        stmt = select(BLOBS.c.content_id, BLOBS.c.weights_id).where(
            BLOBS.c.sha256.in_(part)
        )
        for row in conn.execute(stmt):
            ids["content_id"].add(row.content_id)
            ids["weights_id"].add(row.weights_id)
    out = set(shas)
    for name, values in ids.items():
        for id_part in chunks(sorted(v for v in values if v is not None)):
            members = select(BLOBS.c.sha256).where(BLOBS.c[name].in_(id_part))
            out.update(s for (s,) in conn.execute(members))
    return out


def load_copies(conn: Connection, shas: Iterable[str]) -> list[CopyRow]:
    """Return the hosted occurrences of the blobs ``shas``, first seen first."""
    out: list[CopyRow] = []
    for part in chunks(sorted(set(shas))):
        stmt = (
            select(
                FILES.c.repo_id,
                REPOS.c.host,
                REPOS.c.host_id,
                func.coalesce(REPOS.c.owner, REPOS.c.host_id).label("owner"),
                REPOS.c.downloads,
                FILES.c.sha256,
                FILES.c.path,
                FILES.c.first_seen,
                FILES.c.gone_at,
                func.coalesce(FILES.c.published_at, REPOS.c.published_at).label(
                    "published_at"
                ),
                REPOS.c.downloads_all_time,
                REPOS.c.url,
            )
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .where(REPOS.c.host != LOCAL_HOST, FILES.c.sha256.in_(part))
            .order_by(FILES.c.first_seen, FILES.c.id)
        )
        out += [CopyRow(**r._mapping) for r in conn.execute(stmt)]
    return out


def load_top_families(conn: Connection, n: int, order: str) -> list[FamilyRow]:
    """Return the ``n`` families of the view ``spread_copies`` highest in ``order``.

    The counts, downloads, dates and the order come from the rank counters
    (``family_counts``, an index holds the order); the first sha256,
    jurisdictions and operators are read for those ``n`` families only, with
    the view's definitions, from ``family_blobs`` and ``family_hosts``.

    Raises:
        KeyError: ``order`` is not a column of the view and its counters.
    """
    c = FAMILY_COUNTS
    ranked = conn.execute(
        select(c.c.family, c.c.copies, c.c.live_copies, c.c.hosts, c.c.owners,
               c.c.takedown_cost, c.c.downloads, c.c.downloads_all_time,
               c.c.first_published, c.c.first_seen)
        .where(c.c.copies > 0)
        .order_by(desc(c.c[order]), desc(c.c.copies), c.c.family)
        .limit(n)
    ).all()  # fmt: skip
    extra = _family_extras(conn, [r.family for r in ranked])
    return [FamilyRow(**r._mapping, **extra[r.family]) for r in ranked]


def _family_extras(conn: Connection, families: list[str]) -> dict[str, dict[str, Any]]:
    """The computed columns of ``spread_copies`` for ``families``."""
    out: dict[str, dict[str, Any]] = {
        f: {"sha256": f, "jurisdictions": 0, "operators": 0} for f in families
    }
    m, fh = FAMILY_BLOBS, FAMILY_HOSTS
    for part in chunks(families):
        first = select(m.c.family, func.min(m.c.sha256)).where(m.c.family.in_(part))
        for family, sha in conn.execute(first.group_by(m.c.family)):
            out[family]["sha256"] = sha
        live = (
            select(fh.c.family, func.count(distinct(HOSTS.c.country)),
                   func.count(distinct(HOSTS.c.operator)))
            .join(HOSTS, HOSTS.c.name == fh.c.host)
            .where(fh.c.family.in_(part), fh.c.live_copies > 0)
            .group_by(fh.c.family)
        )  # fmt: skip
        for family, countries, operators in conn.execute(live):
            out[family].update(jurisdictions=countries, operators=operators)
    return out


def family_blobs(conn: Connection, family: str) -> list[str]:
    """Return the blobs of a family (its ``weights_id``, or the blob's own sha256)."""
    stmt = select(BLOBS.c.sha256).where(
        or_(BLOBS.c.weights_id == family, BLOBS.c.sha256 == family)
    )
    return sorted(s for (s,) in conn.execute(stmt))
