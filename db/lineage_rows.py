"""Typed loads of what lineage decides over: blobs, sketches, holdings, claims, edges.

Loads only: every function reads rows in chunks and returns the frozen records
of :mod:`modelscan.lineage.rows`; what they mean is decided in
``modelscan/lineage/``. Local files (host ``local``) are the user's own copies:
they are no hosted occurrence.

Example:
    >>> holdings = load_holdings(conn, [sha])  # doctest: +SKIP
    >>> holdings.origin[sha].repo_id  # doctest: +SKIP
    12
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, or_, select, tuple_

from modelscan.db import lookup
from modelscan.db.portable import chunks
from modelscan.db.tables import BLOBS, CLAIMS, FILES, LINEAGE, REPOS, TENSORS
from modelscan.lineage.rows import (
    BlobInfo,
    ClaimRow,
    EdgeRow,
    Holdings,
    Occurrence,
    RepoRow,
    Resolved,
    SketchPage,
    TensorSketch,
)
from modelscan.refs import CASE_INSENSITIVE_HOSTS, LOCAL_HOST, parse_any_ref

SKETCH_CHUNK = 50  # blobs per tensors query (a blob has hundreds of tensors)


def as_datetime(value: Any) -> datetime | None:
    """Read a timestamp from a view or an aggregate, which bypass the column type.

    SQLite hands back text without an offset (stored UTC); PostgreSQL an aware
    datetime.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- blobs, tensors, claims -----------------------------------------------------------


def _blob_query() -> Any:
    return select(
        BLOBS.c.sha256,
        BLOBS.c.id,
        BLOBS.c.content_id,
        BLOBS.c.weights_id,
        BLOBS.c.structure_id,
        BLOBS.c.dtype,
        BLOBS.c.parameter_count,
    )


def _blob(r: Any) -> BlobInfo:
    return BlobInfo(**r._mapping)


def load_blobs(conn: Connection, shas: Iterable[str]) -> dict[str, BlobInfo]:
    """Return the identity columns of the blobs ``shas``."""
    out: dict[str, BlobInfo] = {}
    for part in chunks(sorted(set(shas))):
        rows = conn.execute(_blob_query().where(BLOBS.c.sha256.in_(part)))
        out.update({r.sha256: _blob(r) for r in rows})
    return out


def load_blob_families(
    conn: Connection, content_ids: Iterable[str], weights_ids: Iterable[str]
) -> dict[str, BlobInfo]:
    """Return every blob with one of ``content_ids`` or ``weights_ids``."""
    out: dict[str, BlobInfo] = {}
    for col, ids in (
        (BLOBS.c.content_id, content_ids),
        (BLOBS.c.weights_id, weights_ids),
    ):
        for part in chunks(sorted(set(ids))):
            rows = conn.execute(_blob_query().where(col.in_(part)))
            out.update({r.sha256: _blob(r) for r in rows})
    return out


def load_shape_groups(
    conn: Connection, counts: Iterable[int], per_count: int
) -> list[BlobInfo]:
    """Fingerprinted blobs with these parameter counts, the first few per count."""
    out: list[BlobInfo] = []
    for part in chunks(sorted(set(counts))):
        stmt = (
            _blob_query()
            .where(BLOBS.c.parameter_count.in_(part), BLOBS.c.tensor_count > 0)
            .order_by(BLOBS.c.first_seen, BLOBS.c.id)
        )
        taken: Counter[int] = Counter()
        for r in conn.execute(stmt):
            if taken[r.parameter_count] < per_count:
                taken[r.parameter_count] += 1
                out.append(_blob(r))
    return out


def load_tensor_shapes(
    conn: Connection, blob_ids: Iterable[int]
) -> dict[int, list[tuple[int, ...]]]:
    """Return the shape of every tensor of each blob."""
    shapes: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for part in chunks(sorted(set(blob_ids)), SKETCH_CHUNK):
        stmt = select(TENSORS.c.blob_id, TENSORS.c.shape).where(
            TENSORS.c.blob_id.in_(part)
        )
        for r in conn.execute(stmt):
            shapes[r.blob_id].append(tuple(r.shape))
    return dict(shapes)


def load_sketches(
    conn: Connection, blob_ids: Iterable[int]
) -> dict[int, list[TensorSketch]]:
    """Return the sketched tensors of each blob, in file order."""
    out: dict[int, list[TensorSketch]] = defaultdict(list)
    for part in chunks(sorted(set(blob_ids)), SKETCH_CHUNK):
        stmt = (
            select(TENSORS.c.blob_id, TENSORS.c.name, TENSORS.c.shape, TENSORS.c.sketch)
            .where(TENSORS.c.blob_id.in_(part), TENSORS.c.sketch.is_not(None))
            .order_by(TENSORS.c.blob_id, TENSORS.c.position)
        )
        for r in conn.execute(stmt):
            out[r.blob_id].append(TensorSketch(r.name, tuple(r.shape), bytes(r.sketch)))
    return dict(out)


def load_claims(conn: Connection, shas: Iterable[str]) -> list[ClaimRow]:
    """Return the claims of the blobs ``shas``, with each blob's dtype and metadata."""
    out: list[ClaimRow] = []
    for part in chunks(sorted(set(shas))):
        stmt = (
            select(
                BLOBS.c.sha256,
                BLOBS.c.dtype,
                BLOBS.c["metadata"].label("meta"),
                CLAIMS.c.key,
                CLAIMS.c.value,
                CLAIMS.c.meaning,
            )
            .join(CLAIMS, CLAIMS.c.blob_id == BLOBS.c.id)
            .where(BLOBS.c.sha256.in_(part))
            .order_by(BLOBS.c.sha256, CLAIMS.c.id)
        )
        out += [
            ClaimRow(**{**r._mapping, "meta": r.meta or {}}) for r in conn.execute(stmt)
        ]
    return out


def known_blob(conn: Connection, sha: str) -> bool:
    """Tell whether the index has a blob row for ``sha``."""
    stmt = select(BLOBS.c.id).where(BLOBS.c.sha256 == sha.lower())
    return conn.execute(stmt).first() is not None


def match_hash(conn: Connection, text: str) -> tuple[str, ...]:
    """Return the sha256 of every blob a hash in any spelling names, sorted.

    Raises:
        StoreError: the text is no hash in a known spelling.
    """
    found = lookup.resolve(conn, lookup.parse_query(text)).kinds
    return tuple(sorted(found))


def load_sketch_page(
    conn: Connection,
    shapes: Iterable[tuple[int, ...]],
    after_id: int,
    limit: int,
) -> SketchPage:
    """Return the next ``limit`` fingerprinted blobs after ``after_id`` (by id).

    With each, its sketched matrices whose shape is one of ``shapes`` (the
    buckets searched); blobs with none are left out. Shapes are JSON, which
    PostgreSQL cannot compare, so they are matched here, page by page.
    """
    wanted = {tuple(s) for s in shapes}
    stmt = (
        _blob_query()
        .where(BLOBS.c.id > after_id, BLOBS.c.tensor_count > 0)
        .order_by(BLOBS.c.id)
        .limit(limit)
    )
    blobs = {r.id: _blob(r) for r in conn.execute(stmt)}
    sketches: dict[int, list[TensorSketch]] = defaultdict(list)
    for part in chunks(sorted(blobs), SKETCH_CHUNK):
        rows = select(
            TENSORS.c.blob_id, TENSORS.c.name, TENSORS.c.shape, TENSORS.c.sketch
        ).where(TENSORS.c.blob_id.in_(part), TENSORS.c.sketch.is_not(None))
        for r in conn.execute(rows.order_by(TENSORS.c.blob_id, TENSORS.c.position)):
            shape = tuple(r.shape)
            if len(shape) >= 2 and shape in wanted:
                sketches[r.blob_id].append(TensorSketch(r.name, shape, bytes(r.sketch)))
    return SketchPage(
        blobs={i: b for i, b in blobs.items() if i in sketches},
        sketches=dict(sketches),
        next_after=max(blobs) if len(blobs) == limit else None,
    )


# --- where blobs live -----------------------------------------------------------------


def load_holdings(conn: Connection, shas: Iterable[str]) -> Holdings:
    """Return the hosted occurrences (live or gone) of the blobs ``shas``."""
    found: list[Occurrence] = []
    for part in chunks(sorted(set(shas))):
        stmt = (
            select(
                FILES.c.sha256,
                FILES.c.repo_id,
                FILES.c.first_seen,
                FILES.c.id.label("file_id"),
                func.coalesce(REPOS.c.downloads, 0).label("downloads"),
                func.coalesce(FILES.c.published_at, REPOS.c.published_at).label(
                    "published_at"
                ),
            )
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .where(FILES.c.sha256.in_(part), REPOS.c.host != LOCAL_HOST)
        )
        found += [Occurrence(**r._mapping) for r in conn.execute(stmt)]
    return Holdings.of(found)


def repo_model_blobs(
    conn: Connection, repo_id: int, suffixes: Sequence[str]
) -> tuple[str, ...]:
    """Return the blobs a repo ever held that have tensors or a path in ``suffixes``."""
    stmt = (
        select(FILES.c.sha256, FILES.c.path, BLOBS.c.tensor_count)
        .join(BLOBS, BLOBS.c.sha256 == FILES.c.sha256)
        .where(FILES.c.repo_id == repo_id)
    )
    wanted = tuple(s.lower() for s in suffixes)
    return tuple(
        sorted(
            {
                r.sha256
                for r in conn.execute(stmt)
                if r.tensor_count or r.path.lower().endswith(wanted)
            }
        )
    )


# --- repos and references -------------------------------------------------------------


def find_repo(conn: Connection, host: str, host_id: str) -> int | None:
    """Return the id of the repo ``(host, host_id)`` (any case on the Hub), or None."""
    stmt = select(REPOS.c.id).where(REPOS.c.host == host, REPOS.c.host_id == host_id)
    found = conn.execute(stmt).scalar()
    if found is None and host in CASE_INSENSITIVE_HOSTS:
        stmt = (
            select(REPOS.c.id)
            .where(REPOS.c.host == host, func.lower(REPOS.c.host_id) == host_id.lower())
            .order_by(REPOS.c.id)
        )
        found = conn.execute(stmt).scalar()
    return int(found) if found is not None else None


def load_repos(conn: Connection, ids: Iterable[int]) -> dict[int, RepoRow]:
    """Return the repos ``ids`` by id."""
    out: dict[int, RepoRow] = {}
    for part in chunks(sorted(set(ids))):
        stmt = select(
            REPOS.c.id,
            REPOS.c.host,
            REPOS.c.host_id,
            REPOS.c.owner,
            REPOS.c.status,
            REPOS.c.url,
            REPOS.c.downloads,
            REPOS.c.first_seen,
            REPOS.c.gone_at,
            REPOS.c.published_at,
            REPOS.c.downloads_all_time,
        ).where(REPOS.c.id.in_(part))
        out.update({r.id: RepoRow(**r._mapping) for r in conn.execute(stmt)})
    return out


def find_repos(
    conn: Connection, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Return {(host, host_id): repo id} for the pairs the index has (exact case)."""
    out: dict[tuple[str, str], int] = {}
    for part in chunks(sorted(set(pairs))):
        stmt = select(REPOS.c.host, REPOS.c.host_id, REPOS.c.id).where(
            tuple_(REPOS.c.host, REPOS.c.host_id).in_(list(part))
        )
        out.update({(r.host, r.host_id): r.id for r in conn.execute(stmt)})
    return out


def resolve_ref(conn: Connection, ref: str) -> Resolved:
    """Return the parent blob and repo a reference names (unknown parts None).

    ``sha256:<hex>`` and ``autov1:<hex>`` name a blob (its repo is where it was
    first seen); other references and host URLs name a repo.
    """
    kind, _, value = ref.partition(":")
    if kind in ("sha256", "autov1") and value:
        col = BLOBS.c.sha256 if kind == "sha256" else BLOBS.c.autov1
        stmt = select(BLOBS.c.sha256).where(col == value.lower()).order_by(BLOBS.c.id)
        sha = conn.execute(stmt).scalar()
        if sha is None:
            return Resolved()
        origin = load_holdings(conn, [sha]).origin.get(sha)
        return Resolved(sha, origin.repo_id if origin else None)
    parsed = parse_any_ref(ref)
    return Resolved(None, find_repo(conn, *parsed) if parsed else None)


def resolve_refs(conn: Connection, refs: Iterable[str]) -> dict[str, Resolved]:
    """Resolve each reference (see :func:`resolve_ref`)."""
    return {ref: resolve_ref(conn, ref) for ref in sorted(set(refs))}


# --- edges ----------------------------------------------------------------------------


def edge_row(r: Any) -> EdgeRow:
    """Read one ``lineage`` row (every column but the timestamps)."""
    return EdgeRow(**{f.name: r._mapping[f.name] for f in fields(EdgeRow)})


def _edges(conn: Connection, conds: Sequence[ColumnElement[bool]]) -> list[EdgeRow]:
    out: dict[int, EdgeRow] = {}
    for cond in conds:
        stmt = select(LINEAGE).where(cond).order_by(LINEAGE.c.id)
        out.update({r.id: edge_row(r) for r in conn.execute(stmt)})
    return [out[i] for i in sorted(out)]


def edges_from(
    conn: Connection, child_repo_ids: Iterable[int], sources: Sequence[str] = ()
) -> list[EdgeRow]:
    """Return the parent edges of the repos ``child_repo_ids`` (of ``sources`` only)."""
    conds = []
    for part in chunks(sorted(set(child_repo_ids))):
        cond = LINEAGE.c.child_repo_id.in_(part)
        conds.append(cond & LINEAGE.c.source.in_(list(sources)) if sources else cond)
    return _edges(conn, conds)


def edges_to(
    conn: Connection,
    parent_repo_ids: Iterable[int] = (),
    parent_shas: Iterable[str] = (),
    parent_refs: Iterable[str] = (),
) -> list[EdgeRow]:
    """Return the edges pointing at these repos, blobs, or unresolved references."""
    conds: list[ColumnElement[bool]] = []
    for ids in chunks(sorted(set(parent_repo_ids))):
        conds.append(LINEAGE.c.parent_repo_id.in_(ids))
    for shas in chunks(sorted(set(parent_shas))):
        conds.append(LINEAGE.c.parent_sha256.in_(shas))
    for refs in chunks(sorted(set(parent_refs))):
        conds.append(
            LINEAGE.c.parent_repo_id.is_(None) & LINEAGE.c.parent_ref.in_(refs)
        )
    return _edges(conn, [or_(*conds)] if conds else [])
