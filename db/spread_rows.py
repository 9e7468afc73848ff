"""Typed loads of ``modelscan spread``: same-weights blobs, copies, ranked families.

``modelscan/lineage/spread.py`` computes the measures (takedown cost, survival,
...) from these rows; the ranking of ``spread --top`` reads the SQL view
``spread_copies`` (db/views/), which defines the same measures per family.

Example:
    >>> copies = load_copies(conn, [sha])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, column, desc, func, or_, select, table

from modelscan.db.lineage_rows import as_datetime
from modelscan.db.portable import chunks
from modelscan.db.tables import BLOBS, FILES, REPOS
from modelscan.lineage.rows import CopyRow, FamilyRow
from modelscan.refs import LOCAL_HOST

FAMILY_COLUMNS = (
    "family",
    "sha256",
    "copies",
    "live_copies",
    "hosts",
    "owners",
    "takedown_cost",
    "downloads",
    "first_seen",
    "jurisdictions",
    "operators",
    "downloads_all_time",
    "first_published",
)
SPREAD_COPIES = table("spread_copies", *(column(c) for c in FAMILY_COLUMNS))


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

    Raises:
        KeyError: ``order`` is not a column of the view.
    """
    view = SPREAD_COPIES
    stmt = (
        select(view)
        .order_by(desc(view.c[order]), desc(view.c.copies), view.c.family)
        .limit(n)
    )
    return [
        FamilyRow(
            **{
                **r._mapping,
                "downloads": int(r.downloads or 0),
                "downloads_all_time": int(r.downloads_all_time or 0),
                "first_seen": as_datetime(r.first_seen),
                "first_published": as_datetime(r.first_published),
            }
        )
        for r in conn.execute(stmt)
    ]


def family_blobs(conn: Connection, family: str) -> list[str]:
    """Return the blobs of a family (its ``weights_id``, or the blob's own sha256)."""
    stmt = select(BLOBS.c.sha256).where(
        or_(BLOBS.c.weights_id == family, BLOBS.c.sha256 == family)
    )
    return sorted(s for (s,) in conn.execute(stmt))
