"""Evidence for inferred edges: same content, weight similarity, claims inside files.

The pieces of ``modelscan link`` that read fingerprints (db/lineage_infer.py
runs them and writes what they return): families of blobs sharing a
``content_id`` or ``weights_id`` (conversions), fine-tune candidates whose
sketches correlate (db/weights.py), and the base models files name in their
own metadata. Each returns lineage rows built by :func:`edge`.

Example:
    >>> row = edge(3, "ab" * 32, "cd" * 32, 1, "copy", "identical-hash", 1.0, {})
    >>> row["parent_ref"] == "sha256:" + "cd" * 32
    True
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from modelscan.db import lineage_refs as refs
from modelscan.db.fileops import chunks
from modelscan.db.lineage_refs import Holdings, load_holdings
from modelscan.db.tables import BLOBS, CLAIMS, TENSORS
from modelscan.db.weights import (
    SIMILARITY_THRESHOLD,
    TensorSketch,
    is_quantized,
    matrix_signature,
    relation_for,
    weight_similarity,
)

MAX_GROUP = 64  # earliest same-shape files compared with each new one
CLAIM_RELATIONS = {"sha256-of-base": "sha256", "autov1-of-base": "autov1"}


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


def conversion_edges(
    conn: Connection, shas: Sequence[str]
) -> tuple[set[str], list[dict[str, Any]]]:
    """Point each later file of a content or weights family at its first upload.

    Returns:
        Every member of the families of ``shas`` (their edges are rewritten),
        and the edges: none between two files first seen in the same repo.
    """
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


def _shape_groups(conn: Connection, counts: Iterable[int]) -> list[BlobInfo]:
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
            info = BlobInfo(*r)
            if (
                info.parameter_count is not None
                and taken[info.parameter_count] < MAX_GROUP
            ):
                taken[info.parameter_count] += 1
                out.append(info)
    return out


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


def similarity_edges(
    conn: Connection, shas: Sequence[str]
) -> tuple[set[str], list[dict[str, Any]]]:
    """Point each fingerprinted file at the earlier one its weights correlate with.

    The group of a file is every fingerprinted file with its parameter count and
    matrix shapes (the earliest :data:`MAX_GROUP`); each weights family takes
    part once, through its first upload.

    Returns:
        Every file of the groups (their edges are rewritten), and the edges.
    """
    touched = [b for b in load_blobs(conn, shas).values() if b.parameter_count]
    group: dict[str, BlobInfo] = {b.sha256: b for b in touched}
    counts = [b.parameter_count for b in touched if b.parameter_count]
    group.update({m.sha256: m for m in _shape_groups(conn, counts)})
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
            if signature[p.id] == signature[child.id] and not same_weights(p, child)
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


def same_weights(a: BlobInfo, b: BlobInfo) -> bool:
    """Tell whether two blobs hold the same tensors (content_id or weights_id)."""
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
