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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, or_, select, update

from modelscan.db import lineage_refs as refs
from modelscan.db.fileops import chunks
from modelscan.db.lineage_refs import Holdings, load_holdings
from modelscan.db.store import Store
from modelscan.db.tables import BLOBS, CLAIMS, FILES, LINEAGE, REPOS, STATE, TENSORS
from modelscan.db.upsert import upsert
from modelscan.db.weights import (
    SIMILARITY_THRESHOLD,
    TensorSketch,
    is_quantized,
    matrix_signature,
    relation_for,
    weight_similarity,
)

logger = logging.getLogger(__name__)


STATE_HOST, STATE_KEY = "local", "link"
OVERLAP = timedelta(hours=1)  # rows committed late with an earlier timestamp
MAX_GROUP = 64  # earliest same-shape files compared with each new one
BLOB_CHUNK = 200  # touched blobs per write transaction
INFERRED_SOURCES = (
    "identical-hash",
    "same-content",
    "same-weights",
    "weight-similarity",
)
CLAIM_RELATIONS = {"sha256-of-base": "sha256", "autov1-of-base": "autov1"}


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
    from modelscan.db.crawl import ensure_host

    ensure_host(conn, STATE_HOST, at)
    row = {
        "host": STATE_HOST,
        "key": STATE_KEY,
        "cursor": json.dumps(stats.as_dict()),
        "run_id": None,
        "updated_at": at,
    }
    upsert(
        conn,
        STATE,
        [row],
        key=["host", "key"],
        update=["cursor", "run_id", "updated_at"],
    )


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
    family, rows = _conversion_edges(conn, shas)
    out["conversion"] += len(rows)
    sources = ("same-content", "same-weights")
    out["removed"] += replace_edges(conn, sources, family, rows, at)
    children, rows = _similarity_edges(conn, shas)
    out["similarity"] += len(rows)
    out["removed"] += replace_edges(conn, ("weight-similarity",), children, rows, at)
    rows = claim_edges(conn, shas, holdings)
    out["claims"] += len(rows)
    out["removed"] += replace_edges(conn, ("declared-file",), shas, rows, at)
    return out


def edge(
    child_repo: int,
    child_sha: str,
    parent_sha: str | None,
    parent_repo: int | None,
    relation: str,
    source: str,
    confidence: float | None,
    evidence: dict[str, Any],
    *,
    ref: str | None = None,
) -> dict[str, Any]:
    """Return one lineage row (timestamps are added when it is written)."""
    return {
        "child_repo_id": child_repo,
        "child_sha256": child_sha,
        "parent_repo_id": parent_repo,
        "parent_sha256": parent_sha,
        "parent_ref": ref or f"sha256:{parent_sha}",
        "relation": relation,
        "source": source,
        "confidence": confidence,
        "evidence": evidence,
    }


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


# --- conversions (same content_id / weights_id) ---------------------------------------


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """The identity columns of a blob."""

    sha256: str
    id: int
    content_id: str | None
    weights_id: str | None
    structure_id: str | None
    dtype: str | None
    parameter_count: int | None


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


def load_blobs(conn: Connection, shas: Iterable[str]) -> dict[str, BlobInfo]:
    """Return the identity columns of the blobs ``shas``."""
    out: dict[str, BlobInfo] = {}
    for part in chunks(sorted(set(shas))):
        out.update(
            {
                r.sha256: BlobInfo(*r)
                for r in conn.execute(_blob_query().where(BLOBS.c.sha256.in_(part)))
            }
        )
    return out


def _family_members(conn: Connection, blobs: Iterable[BlobInfo]) -> dict[str, BlobInfo]:
    cids = sorted({b.content_id for b in blobs if b.content_id})
    wids = sorted({b.weights_id for b in blobs if b.weights_id})
    out: dict[str, BlobInfo] = {}
    for col, ids in ((BLOBS.c.content_id, cids), (BLOBS.c.weights_id, wids)):
        for part in chunks(ids):
            rows = conn.execute(_blob_query().where(col.in_(part)))
            out.update({r.sha256: BlobInfo(*r) for r in rows})
    return out


def _families(members: dict[str, BlobInfo]) -> list[list[BlobInfo]]:
    """Group blobs that share a content_id or a weights_id (union-find)."""
    parent = {s: s for s in members}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    first: dict[tuple[str, str], str] = {}
    for b in members.values():
        for key in (("c", b.content_id), ("w", b.weights_id)):
            if key[1] is None:
                continue
            seen = first.setdefault((key[0], key[1]), b.sha256)
            parent[find(b.sha256)] = find(seen)
    groups: dict[str, list[BlobInfo]] = defaultdict(list)
    for b in members.values():
        groups[find(b.sha256)].append(b)
    return [g for g in groups.values() if len(g) > 1]


def _conversion_edges(
    conn: Connection, shas: Sequence[str]
) -> tuple[set[str], list[dict[str, Any]]]:
    touched = [
        b for b in load_blobs(conn, shas).values() if b.content_id or b.weights_id
    ]
    members = _family_members(conn, touched)
    holdings = load_holdings(conn, members)
    rows: list[dict[str, Any]] = []
    for family in _families(members):
        hosted = sorted(
            (b for b in family if b.sha256 in holdings.origin),
            key=lambda b: holdings.order(b.sha256, b.id),
        )
        if not hosted:
            continue
        root = hosted[0]
        home = holdings.origin[root.sha256].repo_id
        for b in hosted[1:]:
            rid = holdings.origin[b.sha256].repo_id
            if rid == home:
                continue  # one repo shipping two containers: not a separate upload
            same = b.content_id is not None and b.content_id == root.content_id
            evidence = {
                "content_id" if same else "weights_id": root.content_id
                if same
                else root.weights_id
            }
            rows.append(
                edge(
                    rid,
                    b.sha256,
                    root.sha256,
                    home,
                    "conversion",
                    "same-content" if same else "same-weights",
                    1.0,
                    evidence,
                )
            )
    return set(members), rows


# --- weight similarity ----------------------------------------------------------------


def load_sketches(
    conn: Connection, blob_ids: Iterable[int]
) -> dict[int, list[TensorSketch]]:
    """Return the sketched tensors of each blob, in file order."""
    out: dict[int, list[TensorSketch]] = defaultdict(list)
    for part in chunks(sorted(set(blob_ids)), 50):
        stmt = (
            select(TENSORS.c.blob_id, TENSORS.c.name, TENSORS.c.shape, TENSORS.c.sketch)
            .where(TENSORS.c.blob_id.in_(part), TENSORS.c.sketch.is_not(None))
            .order_by(TENSORS.c.blob_id, TENSORS.c.position)
        )
        for r in conn.execute(stmt):
            out[r.blob_id].append(TensorSketch(r.name, tuple(r.shape), bytes(r.sketch)))
    return out


def _shape_group(conn: Connection, blob: BlobInfo) -> list[BlobInfo]:
    """Fingerprinted blobs with the same parameter count, earliest first (capped)."""
    if blob.parameter_count is None:
        return []
    stmt = (
        _blob_query()
        .where(
            BLOBS.c.parameter_count == blob.parameter_count, BLOBS.c.tensor_count > 0
        )
        .order_by(BLOBS.c.first_seen, BLOBS.c.id)
        .limit(MAX_GROUP)
    )
    return [BlobInfo(*r) for r in conn.execute(stmt)]


def _signatures(
    conn: Connection, ids: Iterable[int]
) -> dict[int, tuple[tuple[int, ...], ...]]:
    shapes: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for part in chunks(sorted(set(ids)), 50):
        stmt = select(TENSORS.c.blob_id, TENSORS.c.shape).where(
            TENSORS.c.blob_id.in_(part)
        )
        for r in conn.execute(stmt):
            shapes[r.blob_id].append(tuple(r.shape))
    return {bid: matrix_signature(s) for bid, s in shapes.items()}


def _similarity_edges(
    conn: Connection, shas: Sequence[str]
) -> tuple[set[str], list[dict[str, Any]]]:
    touched = [b for b in load_blobs(conn, shas).values() if b.parameter_count]
    group: dict[str, BlobInfo] = {b.sha256: b for b in touched}
    for b in touched:
        group.update({m.sha256: m for m in _shape_group(conn, b)})
    signature = _signatures(conn, [b.id for b in group.values()])
    holdings = load_holdings(conn, group)
    sketches = load_sketches(conn, [b.id for b in group.values()])
    members = [
        b
        for b in group.values()
        if b.sha256 in holdings.origin and signature.get(b.id) and sketches.get(b.id)
    ]
    members.sort(key=lambda b: holdings.order(b.sha256, b.id))
    everyone = {b.sha256 for b in members}
    members = _first_of_each_family(members)  # later ones are conversions of it
    rows: list[dict[str, Any]] = []
    for i, child in enumerate(members):
        olds = [
            p
            for p in members[:i]
            if signature[p.id] == signature[child.id] and not _same_weights(p, child)
        ]
        found = best_parent(child, olds, sketches)
        if found is None:
            continue
        parent, sim, ranked = found
        evidence = {**sim.evidence(), "candidates": ranked}
        rows.append(
            edge(
                holdings.origin[child.sha256].repo_id,
                child.sha256,
                parent.sha256,
                holdings.origin[parent.sha256].repo_id,
                relation_for(child.dtype, parent.dtype),
                "weight-similarity",
                round(sim.median, 4),
                evidence,
            )
        )
    return everyone, [r for r in rows if r["child_repo_id"] != r["parent_repo_id"]]


def _first_of_each_family(members: Sequence[BlobInfo]) -> list[BlobInfo]:
    """Keep, in order, only the first blob of each content_id/weights_id family."""
    seen: set[tuple[str, str]] = set()
    out = []
    for b in members:
        keys = {
            (kind, v) for kind, v in (("c", b.content_id), ("w", b.weights_id)) if v
        }
        if not keys & seen:
            out.append(b)
        seen |= keys
    return out


def _same_weights(a: BlobInfo, b: BlobInfo) -> bool:
    return bool(
        (a.content_id and a.content_id == b.content_id)
        or (a.weights_id and a.weights_id == b.weights_id)
    )


def best_parent(
    child: BlobInfo,
    candidates: Sequence[BlobInfo],
    sketches: dict[int, list[TensorSketch]],
) -> tuple[BlobInfo, Any, list[dict[str, Any]]] | None:
    """Return the candidate whose weights correlate best with ``child``, if related.

    Returns:
        (parent, its Similarity, the top candidates as evidence), or None when no
        candidate reaches the threshold.
    """
    scored = []
    for cand in candidates:
        sim = weight_similarity(sketches[child.id], sketches[cand.id])
        if sim is not None:
            scored.append((sim.median, cand, sim))
    scored.sort(key=lambda x: -x[0])
    if not scored or scored[0][0] < SIMILARITY_THRESHOLD:
        return None
    ranked = [
        {"sha256": c.sha256, "median_correlation": round(m, 4)}
        for m, c, _ in scored[:3]
    ]
    return scored[0][1], scored[0][2], ranked


# --- claims made inside files ---------------------------------------------------------


def claim_edges(
    conn: Connection, shas: Sequence[str], holdings: Holdings
) -> list[dict[str, Any]]:
    """Edges for the base-model hashes and names files state about themselves."""
    claims: dict[str, list[Any]] = defaultdict(list)
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
        )
        for r in conn.execute(stmt):
            claims[r.sha256].append(r)
    rows = []
    for sha, found in claims.items():
        origin = holdings.origin.get(sha)
        if origin is None:
            continue
        named: set[str] = set()
        for parent_ref, relation, key in claimed_parents(found):
            parent_sha, parent_repo = refs.resolve_ref(conn, parent_ref)
            if parent_sha == sha or (parent_sha or parent_ref) in named:
                continue  # the file itself, or a base another claim already named
            named.add(parent_sha or parent_ref)
            rows.append(
                edge(
                    origin.repo_id,
                    sha,
                    parent_sha,
                    parent_repo,
                    relation,
                    "declared-file",
                    None,
                    {"claim": key},
                    ref=parent_ref,
                )
            )
    return rows


def claimed_parents(claims: Sequence[Any]) -> list[tuple[str, str, str]]:
    """Return (parent_ref, relation, claim key) for each base a file names.

    Kohya hashes name the base a LoRA (adapter) or checkpoint (fine-tune) was
    trained on; GGUF ``general.base_model.N.*`` names a fine-tune's base (its
    ``repo_url`` if given, else its name) and ``general.source.*`` the model it
    was converted or quantized from.
    """
    out: dict[str, tuple[str, str, str]] = {}
    gguf: dict[str, dict[str, str]] = defaultdict(dict)
    for c in claims:
        kind = CLAIM_RELATIONS.get(c.meaning)
        if kind is not None:
            value = c.value.strip().lower().removeprefix("0x")
            out[f"{kind}:{value}"] = (f"{kind}:{value}", _kohya_relation(c), c.key)
        elif c.meaning in ("base-model", "source"):
            group, _, field_name = c.key.rpartition(".")
            gguf[group][field_name] = c.value
            gguf[group]["_dtype"] = c.dtype or ""
    for group, fields in sorted(gguf.items()):
        ref = refs.url_ref(fields.get("repo_url", "")) or fields.get("name")
        if not ref:
            continue
        if group.startswith("general.source"):
            relation = "quantized" if is_quantized(fields["_dtype"]) else "conversion"
        else:
            relation = "finetune"
        out.setdefault(
            ref,
            (
                ref,
                relation,
                f"{group}.repo_url" if "repo_url" in fields else f"{group}.name",
            ),
        )
    return list(out.values())


def _kohya_relation(claim: Any) -> str:
    meta = claim.meta or {}
    return "adapter" if "ss_network_module" in meta else "finetune"


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
