"""The typed rows lineage and spread are decided over, and the index that hands them in.

``db/`` loads and saves these frozen records (it imports this module and
nothing else of ``modelscan.lineage``); the deciding code in
``modelscan/lineage/`` receives them through :class:`LineageIndex`, a protocol
that :class:`modelscan.db.store.Store` implements, so it never imports ``db``
and its tests can hand in plain records.

One lineage natural key: :data:`LINEAGE_KEY`, the lineage table's unique key,
read from a row as :attr:`EdgeRow.key`.

Example:
    >>> e = blob_edge(child_repo_id=3, child_sha256="ab", parent_sha256="cd",
    ...               parent_repo_id=1, relation="copy", source="identical-hash")
    >>> tuple(e.key)
    (3, 'sha256:cd', 'copy', 'identical-hash')
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

LINEAGE_KEY = ("child_repo_id", "parent_ref", "relation", "source")
INFERRED_SOURCES = (
    "identical-hash",
    "same-content",
    "same-weights",
    "weight-similarity",
)


class EdgeKey(NamedTuple):
    """The lineage natural key (the table's unique constraint)."""

    child_repo_id: int
    parent_ref: str
    relation: str
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeRow:
    """One ``lineage`` row: ``child`` derives from the parent it names."""

    child_repo_id: int
    parent_ref: str  # "sha256:<hex>", "hf:org/name", a URL or free text
    relation: str
    source: str
    child_sha256: str | None = None  # None: a host declared it for the whole repo
    parent_repo_id: int | None = None
    parent_sha256: str | None = None
    confidence: float | None = None
    evidence: dict[str, Any] | None = None
    id: int | None = None  # set when loaded from the index

    @property
    def key(self) -> EdgeKey:
        """The lineage natural key of this row."""
        return EdgeKey(self.child_repo_id, self.parent_ref, self.relation, self.source)

    def values(self) -> dict[str, Any]:
        """Return the columns to write (timestamps are the writer's)."""
        return {
            "child_repo_id": self.child_repo_id,
            "child_sha256": self.child_sha256,
            "parent_repo_id": self.parent_repo_id,
            "parent_sha256": self.parent_sha256,
            "parent_ref": self.parent_ref,
            "relation": self.relation,
            "source": self.source,
            "confidence": self.confidence,
            "evidence": self.evidence,
        }


def blob_edge(
    *,
    child_repo_id: int,
    child_sha256: str,
    parent_sha256: str,
    parent_repo_id: int | None,
    relation: str,
    source: str,
    confidence: float | None = 1.0,
    evidence: dict[str, Any] | None = None,
) -> EdgeRow:
    """An inferred edge from a file to a parent file (``parent_ref`` its sha256)."""
    return EdgeRow(
        child_repo_id=child_repo_id,
        child_sha256=child_sha256,
        parent_sha256=parent_sha256,
        parent_repo_id=parent_repo_id,
        parent_ref=f"sha256:{parent_sha256}",
        relation=relation,
        source=source,
        confidence=confidence,
        evidence=evidence or {},
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobInfo:
    """The identity columns of a blob."""

    sha256: str
    id: int
    content_id: str | None = None
    weights_id: str | None = None
    structure_id: str | None = None
    dtype: str | None = None
    parameter_count: int | None = None


@dataclass(frozen=True, slots=True)
class TensorSketch:
    """One tensor's name, shape and 256-value float16 sketch (a ``tensors`` row)."""

    name: str
    shape: tuple[int, ...]
    sketch: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Occurrence:
    """One hosted occurrence of a blob (a ``files`` row of a non-local repo)."""

    sha256: str
    repo_id: int
    file_id: int
    first_seen: datetime
    downloads: int = 0
    published_at: datetime | None = None  # the host's date, else None


@dataclass(frozen=True, slots=True)
class Origin:
    """The first hosted occurrence of a blob."""

    repo_id: int
    first_seen: datetime
    file_id: int
    downloads: int = 0
    published_at: datetime | None = None

    def key(self) -> tuple[datetime, datetime, int, int]:
        """Earlier first (the host's date, else our sighting), then more downloaded.

        One crawl sees a whole host in one pass, so only the hosts' dates can
        tell a 2021 upload from its 2025 re-upload; on the same date, the one
        we saw first, then the more downloaded, then the lower file id.
        """
        dated = self.published_at or self.first_seen
        return (dated, self.first_seen, -self.downloads, self.file_id)


@dataclass
class Holdings:
    """Hosted occurrences of some blobs: who holds each, and who held it first."""

    origin: dict[str, Origin] = field(default_factory=dict)
    repos: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def of(cls, occurrences: Iterable[Occurrence]) -> Holdings:
        """Collect occurrences: the holders of each blob and its first upload."""
        out = cls()
        for o in occurrences:
            out.repos[o.sha256].add(o.repo_id)
            found = Origin(
                o.repo_id, o.first_seen, o.file_id, o.downloads, o.published_at
            )
            seen = out.origin.get(o.sha256)
            if seen is None or found.key() < seen.key():
                out.origin[o.sha256] = found
        return out

    def order(self, sha: str, blob_id: int) -> tuple[datetime, datetime, int, int, int]:
        """Sort key of blobs: the one first uploaded first (see :meth:`Origin.key`)."""
        return (*self.origin[sha].key(), blob_id)

    def holders(self) -> tuple[int, ...]:
        """Every repo holding one of the blobs, sorted."""
        return tuple(sorted({rid for ids in self.repos.values() for rid in ids}))


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimRow:
    """A claim a file makes (a ``claims`` row with its blob's dtype and metadata)."""

    sha256: str
    key: str
    value: str
    meaning: str
    dtype: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RepoRow:
    """The columns of a repo lineage shows."""

    id: int
    host: str
    host_id: str
    owner: str | None = None
    status: str | None = None
    url: str | None = None
    downloads: int | None = None
    first_seen: datetime | None = None
    gone_at: datetime | None = None
    published_at: datetime | None = None  # the host's creation date
    downloads_all_time: int | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a reference names in the index: a parent blob, a parent repo, or neither."""

    sha256: str | None = None
    repo_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyRow:
    """One hosted occurrence counted by a spread (a ``files`` row with its repo)."""

    repo_id: int
    host: str
    host_id: str
    owner: str  # the account: the repo's owner, else its host id
    downloads: int | None
    sha256: str | None  # None: a derivative repo without hashed model files
    path: str | None
    first_seen: datetime
    gone_at: datetime | None
    kind: str = "exact"  # exact | content | derivative (set by the spread)
    published_at: datetime | None = None  # the host's date (the file's, else repo's)
    downloads_all_time: int | None = None
    url: str | None = None  # the repo's page on its host

    @property
    def dated(self) -> datetime:
        """When the copy appeared: the host's date, else our first sighting."""
        return self.published_at or self.first_seen

    @property
    def account(self) -> tuple[str, str]:
        """The (host, owner) account holding the copy."""
        return (self.host, self.owner)


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyRow:
    """One weights family from the ``spread_copies`` view."""

    family: str
    sha256: str
    copies: int
    live_copies: int
    hosts: int
    owners: int
    takedown_cost: int
    downloads: int
    first_seen: datetime | None
    jurisdictions: int = 0
    operators: int = 0
    downloads_all_time: int = 0
    first_published: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SketchPage:
    """One page of the sketch buckets: blobs by id and their matrices of the shapes."""

    blobs: dict[int, BlobInfo]
    sketches: dict[int, list[TensorSketch]]
    next_after: int | None  # the blob id to page on from; None: the last page


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeReplacement:
    """The edges of ``sources`` that ``child_shas`` must have: exactly ``rows``."""

    sources: tuple[str, ...]
    child_shas: frozenset[str]
    rows: tuple[EdgeRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkWatermark:
    """What the last ``link`` run saved: its counts and watermark."""

    state: dict[str, Any]
    watermark: datetime | None
    finished_at: datetime


class LineageIndex(Protocol):
    """The typed loads and saves lineage and spread need (``db.store.Store``)."""

    def holdings(self, shas: Iterable[str]) -> Holdings: ...  # noqa: D102
    def blobs(self, shas: Iterable[str]) -> dict[str, BlobInfo]: ...  # noqa: D102
    def blob_families(  # noqa: D102
        self, content_ids: Iterable[str], weights_ids: Iterable[str]
    ) -> dict[str, BlobInfo]: ...
    def shape_groups(  # noqa: D102
        self, counts: Iterable[int], per_count: int
    ) -> list[BlobInfo]: ...
    def matrix_shapes(  # noqa: D102
        self, blob_ids: Iterable[int]
    ) -> dict[int, list[tuple[int, ...]]]: ...
    def sketches(  # noqa: D102
        self, blob_ids: Iterable[int]
    ) -> dict[int, list[TensorSketch]]: ...
    def claims(self, shas: Iterable[str]) -> list[ClaimRow]: ...  # noqa: D102
    def resolve_refs(self, refs: Iterable[str]) -> dict[str, Resolved]: ...  # noqa: D102
    def find_repo(self, host: str, host_id: str) -> int | None: ...  # noqa: D102
    def repos(self, ids: Iterable[int]) -> dict[int, RepoRow]: ...  # noqa: D102
    def repo_model_blobs(  # noqa: D102
        self, repo_id: int, suffixes: Sequence[str]
    ) -> tuple[str, ...]: ...
    def match_hash(self, text: str) -> tuple[str, ...]: ...  # noqa: D102
    def known_blob(self, sha: str) -> bool: ...  # noqa: D102
    def edges_from(  # noqa: D102
        self, child_repo_ids: Iterable[int], *, sources: Sequence[str] = ()
    ) -> list[EdgeRow]: ...
    def edges_to(  # noqa: D102
        self,
        parent_repo_ids: Iterable[int] = (),
        *,
        parent_shas: Iterable[str] = (),
        parent_refs: Iterable[str] = (),
    ) -> list[EdgeRow]: ...
    def same_weights_blobs(  # noqa: D102
        self, shas: Iterable[str], content_id: str | None, weights_id: str | None
    ) -> set[str]: ...
    def spread_copies(self, shas: Iterable[str]) -> list[CopyRow]: ...  # noqa: D102
    def top_families(self, n: int, *, order: str) -> list[FamilyRow]: ...  # noqa: D102
    def family_blobs(self, family: str) -> list[str]: ...  # noqa: D102
