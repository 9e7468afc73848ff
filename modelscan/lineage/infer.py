"""``modelscan link``: load rows from the index, decide edges, write them back.

Edges written here always name the child file (``child_sha256``) and the repo
where that file was first seen (``child_repo_id``); the parent is a blob
(``parent_ref`` = ``sha256:<hex>``) and the repo where it was first seen. The
kinds of evidence are modelscan/lineage/evidence.py's: copies, conversions,
weight similarity, claims inside files. Declared references of hosts (edges
without ``child_sha256``) whose parent has since been crawled get their
``parent_repo_id``.

The run is incremental: only files, blobs and repos seen since the watermark of
the previous run are looked at, and each step is idempotent (edges are upserted
on the lineage natural key), so a killed run is simply run again.

Example:
    >>> stats = link(open_store())  # doctest: +SKIP
    >>> stats.summary()  # doctest: +SKIP
    'link: 12 blobs; edges: 3 copy, 1 conversion, 1 similarity, 0 file claims; ...'
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from modelscan.lineage import evidence
from modelscan.lineage.rows import (
    BlobInfo,
    EdgeReplacement,
    EdgeRow,
    Holdings,
    LineageIndex,
    LinkWatermark,
    Resolved,
    SketchPage,
    TensorSketch,
)
from modelscan.lineage.sketch_index import SketchIndex

logger = logging.getLogger(__name__)

OVERLAP = timedelta(hours=1)  # rows committed late with an earlier timestamp
BLOB_CHUNK = 200  # touched blobs per write transaction
SKETCH_PAGE = 500  # blobs per page of the sketch buckets
COUNTS = ("blobs", "copy", "conversion", "similarity", "claims", "resolved", "removed")


class LinkIndex(LineageIndex, Protocol):
    """What ``link`` needs beyond the lineage loads: changes, watermark, writes."""

    def touched_blobs(self, since: datetime | None) -> set[str]: ...  # noqa: D102
    def newest_sighting(self) -> datetime | None: ...  # noqa: D102
    def link_state(self) -> LinkWatermark | None: ...  # noqa: D102
    def save_link_state(self, state: dict[str, Any], at: datetime) -> None: ...  # noqa: D102
    def replace_edges(  # noqa: D102
        self, batch: Sequence[EdgeReplacement], at: datetime
    ) -> int: ...
    def unresolved_edges(self, since: datetime | None) -> list[EdgeRow]: ...  # noqa: D102
    def set_edge_parents(self, parents: dict[int, Resolved]) -> None: ...  # noqa: D102
    def sketch_page(  # noqa: D102
        self, shapes: Iterable[tuple[int, ...]], after_id: int, limit: int
    ) -> SketchPage: ...


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
        out: dict[str, Any] = {k: getattr(self, k) for k in COUNTS}
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


def link(
    index: LinkIndex,
    *,
    since: datetime | None = None,
    full: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> LinkStats:
    """Infer lineage edges from files, blobs and repos seen since the last run.

    Args:
        index: the index (a :class:`modelscan.db.store.Store`).
        since: look at what was seen from this time on (default: the watermark
            of the previous run; everything on the first run).
        full: ignore the watermark and look at everything.
        clock: the current time (tests pass a fixed one).

    Returns:
        The run's counts; the new watermark is saved in the index.

    Raises:
        StoreError: the index failed.
    """
    if since is None and not full:
        state = index.link_state()
        since = state.watermark if state else None
    stats = LinkStats(since=since)
    at = clock()
    newest = index.newest_sighting()
    touched = sorted(index.touched_blobs(since))
    stats.blobs = len(touched)
    for start in range(0, len(touched), BLOB_CHUNK):
        counts = link_blobs(index, touched[start : start + BLOB_CHUNK], at)
        for key, n in counts.items():
            setattr(stats, key, getattr(stats, key) + n)
    for key, n in link_similar(index, touched, at).items():
        setattr(stats, key, getattr(stats, key) + n)
    stats.resolved = resolve_declared(index, since)
    if newest is not None:
        stats.watermark = min(newest, at) - OVERLAP
        index.save_link_state(stats.as_dict(), at)
    stats.seconds = time.monotonic() - stats._started
    logger.info("%s", stats.summary())
    return stats


def link_blobs(index: LinkIndex, shas: Sequence[str], at: datetime) -> Counter[str]:
    """Rewrite the copy, conversion and claim edges of ``shas``; counts by kind.

    Weight-similarity edges are :func:`link_similar`'s (one search of the
    sketch buckets for the whole run).
    """
    holdings = index.holdings(shas)
    copies = evidence.copy_edges(holdings, shas)
    family, conversions = _conversions(index, shas)
    claims = index.claims(shas)
    parents = index.resolve_refs(p.ref for p in evidence.claimed_parents(claims))
    claimed = evidence.claim_edges(claims, holdings, parents)
    batch = [
        _replacement(("identical-hash",), shas, copies),
        _replacement(("same-content", "same-weights"), family, conversions),
        _replacement(("declared-file",), shas, claimed),
    ]
    removed = index.replace_edges(batch, at)
    return Counter(
        copy=len(copies),
        conversion=len(conversions),
        claims=len(claimed),
        removed=removed,
    )


def _replacement(
    sources: tuple[str, ...], shas: Iterable[str], rows: Sequence[EdgeRow]
) -> EdgeReplacement:
    return EdgeReplacement(
        sources=sources, child_shas=frozenset(shas), rows=tuple(rows)
    )


def _conversions(
    index: LineageIndex, shas: Sequence[str]
) -> tuple[set[str], list[EdgeRow]]:
    """The families of ``shas`` (their edges are rewritten) and their conversions."""
    touched = [b for b in index.blobs(shas).values() if b.content_id or b.weights_id]
    members = index.blob_families(
        (b.content_id for b in touched if b.content_id),
        (b.weights_id for b in touched if b.weights_id),
    )
    holdings = index.holdings(members)
    return set(members), evidence.conversion_edges(members, holdings)


@dataclass
class Buckets:
    """The sketch buckets a run searches: files, upload order, LSH index."""

    blobs: dict[int, BlobInfo]
    holdings: Holdings
    index: SketchIndex

    def children(self, touched: set[int]) -> set[int]:
        """The touched files and the later files a touched one may now parent."""
        later = {c for c, p in self.index.pairs(touched).tolist() if p in touched}
        return touched | later

    def candidates(self, children: set[int]) -> dict[int, list[int]]:
        """Each child's earlier candidate parents (LSH collisions, screened)."""
        out: dict[int, list[int]] = {}
        for c, p in self.index.pairs(children).tolist():
            if c in children:
                out.setdefault(c, []).append(p)
        return out


def load_buckets(index: LinkIndex, shapes: set[tuple[int, ...]]) -> Buckets:
    """Page through the index's sketches of ``shapes`` into one LSH index."""
    lsh = SketchIndex()
    blobs: dict[int, BlobInfo] = {}
    after: int | None = 0
    while after is not None:
        page = index.sketch_page(shapes, after, SKETCH_PAGE)
        blobs.update(page.blobs)
        lsh.add_files((bid, 0, s) for bid, s in page.sketches.items())
        after = page.next_after
    holdings = index.holdings(b.sha256 for b in blobs.values())
    hosted = [b for b in blobs.values() if b.sha256 in holdings.origin]
    hosted.sort(key=lambda b: holdings.order(b.sha256, b.id))
    lsh.set_order([b.id for b in hosted])
    return Buckets({b.id: b for b in hosted}, holdings, lsh)


def link_similar(index: LinkIndex, shas: Sequence[str], at: datetime) -> Counter[str]:
    """Rewrite the weight-similarity edges of ``shas`` and of files they may parent.

    The buckets are the matrix shapes of the touched files' sketches; every
    file with a sketch of one of them is loaded once, page by page, into a
    :class:`~modelscan.lineage.sketch_index.SketchIndex`; each child is then
    compared (``scanner/similarity.py``) with its LSH candidates only.
    """
    touched = {b.id: b for b in index.blobs(shas).values() if b.parameter_count}
    mine = index.sketches(touched)
    shapes = {t.shape for s in mine.values() for t in s if len(t.shape) >= 2}
    if not shapes:
        return Counter()
    buckets = load_buckets(index, shapes)
    children = sorted(buckets.children(set(mine)))
    found = buckets.candidates(set(children))
    counts: Counter[str] = Counter()
    for start in range(0, len(children), BLOB_CHUNK):
        part = children[start : start + BLOB_CHUNK]
        counts += _similar_chunk(index, buckets, part, found, at)
    return counts


def _similar_chunk(
    index: LinkIndex,
    buckets: Buckets,
    children: Sequence[int],
    found: dict[int, list[int]],
    at: datetime,
) -> Counter[str]:
    """Decide and write the weight-similarity edges of some children."""
    ids = set(children) | {p for c in children for p in found.get(c, ())}
    group = [buckets.blobs[i] for i in sorted(ids) if i in buckets.blobs]
    sketches: dict[int, list[TensorSketch]] = index.sketches(ids)
    everyone, rows = evidence.similarity_edges(
        group,
        index.matrix_shapes(ids),
        sketches,
        buckets.holdings,
        candidates=found,
        children=children,
    )
    blind = {b.sha256 for b in group if not (b.content_id or b.weights_id)}
    similar = [r for r in rows if r.source == "weight-similarity"]
    same = [r for r in rows if r.source == "same-weights"]
    removed = index.replace_edges(
        [
            _replacement(("weight-similarity",), everyone, similar),
            _replacement(("same-weights",), everyone & blind, same),
        ],
        at,
    )
    return Counter(similarity=len(similar), conversion=len(same), removed=removed)


def resolve_declared(index: LinkIndex, since: datetime | None) -> int:
    """Point unresolved references at repos and blobs now in the index.

    Returns:
        How many edges now name a parent repo.
    """
    todo = index.unresolved_edges(since)
    found = index.resolve_refs(e.parent_ref for e in todo)
    updates: dict[int, Resolved] = {}
    for e in todo:
        target = found[e.parent_ref]
        if target.repo_id is None and target.sha256 in (None, e.parent_sha256):
            continue
        assert e.id is not None  # loaded rows carry their id
        updates[e.id] = target
    if updates:
        index.set_edge_parents(updates)
    return sum(1 for t in updates.values() if t.repo_id is not None)
