"""The ``where`` lookup: every known occurrence of a file, by any of its hashes.

A query is a hash in any spelling modelscan or a host uses: sha256 (64 hex),
autov1 (8), autov2 (10, a sha256 prefix), any sha256 prefix of 8 or more,
autov3 (12 as Civitai shows it, or the full 64), blake3 (64), CRC-32 (8 hex,
zlib's order or Civitai's byte-reversed one), any case, optionally prefixed
with the kind (``autov2:8ace1e2c5d``). Matching blobs are expanded to blobs
with the same ``content_id`` (same named tensors in another container), then
the same ``weights_id`` (same values under other names).

Prefixes are range conditions (``sha256 >= :p AND sha256 < :p || 'g'``), which
use the btree index on both databases whatever the collation.

Example:
    >>> [q.kind for q in parse_query("8ACE1E2C5D")]
    ['autov2']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, or_, select

from modelscan.db.tables import BLOBS, FILES, REPOS, VERSIONS
from modelscan.errors import StoreError
from modelscan.records import crc32_from_civitai

MIN_PREFIX = 8
MAX_BLOBS_PER_HASH = 1000  # a prefix this ambiguous is not a lookup any more
EMPTY_AUTOV1 = "e3b0c442"  # A1111's autov1 of every file under 1 MiB: matches nothing
_HEX = re.compile(r"[0-9a-f]+")
_KINDS = ("sha256", "autov1", "autov2", "autov3", "blake3", "crc32")


@dataclass(frozen=True, slots=True)
class HashQuery:
    """One way to read a query: compare ``column`` with ``value`` (or as a prefix)."""

    kind: str  # the kind reported to the user
    column: str  # blobs column
    value: str
    prefix: bool = False


@dataclass(slots=True)
class Resolved:
    """Blobs a query matched: {sha256: kind}, and their content and weights ids."""

    kinds: dict[str, str] = field(default_factory=dict)
    content_ids: set[str | None] = field(default_factory=set)
    weights_ids: set[str | None] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Match:
    """One occurrence found by a lookup, and how it matched."""

    # sha256 | autov1 | autov2 | autov3 | blake3 | crc32 | sha256-prefix (exact hash),
    # then content_id | weights_id (same weights in another file)
    kind: str
    sha256: str | None
    host: str
    repo: str  # the host's id of the repo (a directory for local files)
    owner: str | None
    version: str | None
    path: str
    url: str | None
    status: str  # live | gone | taken_down
    since: datetime | None  # when it was found gone
    first_seen: datetime
    last_seen: datetime

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form (timestamps in ISO 8601 UTC)."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out


def parse_query(query: str) -> list[HashQuery]:
    """Read a hash in any supported spelling as the lookups it may mean.

    Raises:
        StoreError: not hexadecimal, too short, too long, or an unknown kind.
    """
    text = query.strip().lower()
    kind = None
    if ":" in text:
        kind, _, text = (part.strip() for part in text.partition(":"))
        if kind not in _KINDS:
            raise StoreError(
                f"unknown hash kind {kind!r} in {query!r}: use one of "
                + ", ".join(_KINDS)
            )
    if text.startswith("0x"):
        text = text[2:]
    if not _HEX.fullmatch(text):
        raise StoreError(
            f"not a hash: {query!r}; give a hex hash or an existing file path"
        )
    if len(text) < MIN_PREFIX or len(text) > 64:
        raise StoreError(f"{query!r} has {len(text)} hex digits: give 8 to 64")
    found = _by_kind(kind, text) if kind else _by_length(text)
    if not found:
        raise StoreError(f"{query!r} cannot be a {kind} hash ({len(text)} hex digits)")
    return found


def _crc_queries(h: str) -> list[HashQuery]:
    civitai = f"{crc32_from_civitai(h):08x}"
    return [HashQuery("crc32", "crc32", v) for v in dict.fromkeys([h, civitai])]


def _autov3_queries(h: str) -> list[HashQuery]:
    if len(h) == 64:  # full body hash: stored full, or as Civitai's 12
        return [HashQuery("autov3", "autov3", h), HashQuery("autov3", "autov3", h[:12])]
    return [HashQuery("autov3", "autov3", h, prefix=True)]


def _by_length(h: str) -> list[HashQuery]:
    n = len(h)
    if n == 64:
        return [
            HashQuery("sha256", "sha256", h),
            HashQuery("blake3", "blake3", h),
            *_autov3_queries(h),
        ]
    if n == 10:
        return [HashQuery("autov2", "sha256", h, prefix=True)]
    found = [HashQuery("sha256-prefix", "sha256", h, prefix=True)]
    if n == 8:
        autov1 = [] if h == EMPTY_AUTOV1 else [HashQuery("autov1", "autov1", h)]
        return [*autov1, *_crc_queries(h), *found]
    if n >= 12:
        found[:0] = _autov3_queries(h)
    return found


def _by_kind(kind: str, h: str) -> list[HashQuery]:
    n = len(h)
    if kind == "sha256":
        return [HashQuery("sha256", "sha256", h, prefix=n < 64)]
    if kind == "autov2":
        return [HashQuery("autov2", "sha256", h, prefix=True)]
    if kind == "autov1" and n == 8:
        return [HashQuery("autov1", "autov1", h)]
    if kind == "autov3" and n >= 12:
        return _autov3_queries(h)
    if kind == "blake3":
        return [HashQuery("blake3", "blake3", h, prefix=n < 64)]
    if kind == "crc32" and n == 8:
        return _crc_queries(h)
    return []


def _condition(q: HashQuery) -> ColumnElement[bool]:
    col = BLOBS.c[q.column]
    if q.prefix:
        # Every stored hash is lower-case hex, and "g" sorts after "f".
        return (col >= q.value) & (col < q.value + "g")
    return col == q.value


def _matches(q: HashQuery, value: str | None) -> bool:
    if value is None:
        return False
    return value.startswith(q.value) if q.prefix else value == q.value


def resolve(conn: Connection, queries: Sequence[HashQuery]) -> Resolved:
    """Find the blobs matching any of ``queries`` in one statement.

    Returns:
        {sha256: kind} in the order of ``queries``, and the content and weights
        ids of those blobs.
    """
    cols = sorted({q.column for q in queries} | {"sha256"})
    stmt = (
        select(*(BLOBS.c[c] for c in cols), BLOBS.c.content_id, BLOBS.c.weights_id)
        .where(or_(*(_condition(q) for q in queries)))
        .limit(MAX_BLOBS_PER_HASH)
    )
    rows = conn.execute(stmt).all()
    out = Resolved()
    for q in queries:
        for row in rows:
            if _matches(q, row._mapping[q.column]):
                out.kinds.setdefault(row.sha256, q.kind)
    for row in rows:
        out.content_ids.add(row.content_id)
        out.weights_ids.add(row.weights_id)
    return out


def expand(
    conn: Connection,
    resolved: Resolved,
    *,
    content_ids: Iterable[str] = (),
    weights_ids: Iterable[str] = (),
) -> list[Match]:
    """Return occurrences of the matched blobs, then same content_id, weights_id."""
    found = dict(resolved.kinds)
    cids = {c for c in (*resolved.content_ids, *content_ids) if c}
    wids = {w for w in (*resolved.weights_ids, *weights_ids) if w}
    if cids or wids:
        stmt = select(BLOBS.c.sha256, BLOBS.c.content_id).where(
            or_(
                BLOBS.c.content_id.in_(sorted(cids)),
                BLOBS.c.weights_id.in_(sorted(wids)),
            )
        )
        rows = conn.execute(stmt).all()
        for kind in ("content_id", "weights_id"):
            for sha, cid in rows:
                if (kind == "content_id") == (cid in cids):
                    found.setdefault(sha, kind)
    return occurrences(conn, found)


def occurrences(conn: Connection, kinds: dict[str, str]) -> list[Match]:
    """Return every occurrence of the blobs in ``kinds``, grouped by kind order."""
    if not kinds:
        return []
    gone_last = case((FILES.c.gone_at.is_(None), 0), else_=1)
    stmt = (
        select(
            FILES.c.sha256,
            REPOS.c.host,
            REPOS.c.host_id,
            REPOS.c.owner,
            VERSIONS.c.revision,
            FILES.c.path,
            FILES.c.url,
            FILES.c.status,
            FILES.c.gone_at,
            FILES.c.first_seen,
            FILES.c.last_seen,
        )
        .join(REPOS, REPOS.c.id == FILES.c.repo_id)
        .outerjoin(VERSIONS, VERSIONS.c.id == FILES.c.version_id)
        .where(FILES.c.sha256.in_(list(kinds)))
        .order_by(gone_last, REPOS.c.host, REPOS.c.host_id, FILES.c.path, FILES.c.id)
    )
    order = {k: i for i, k in enumerate(dict.fromkeys(kinds.values()))}
    matches = [Match(kinds[r.sha256], *r) for r in conn.execute(stmt)]
    return sorted(matches, key=lambda m: order[m.kind])  # stable: keeps the SQL order
