"""Evidence for inferred edges, decided over plain rows: no SQL, no index.

- copies: every other repo holding the same bytes points at the first repo
  seen holding them (``copy`` / ``identical-hash``, confidence 1);
- conversions: a file with the same ``content_id`` (or ``weights_id``) and
  other bytes points at the first upload of that family, unless both were first
  seen in the same repo (``conversion`` / ``same-content`` or ``same-weights``);
- similarity: a fingerprinted file points at the earlier candidate whose
  sketches correlate best, if the median r over matrices is at least 0.5
  (scanner/similarity.py). Candidates share matrix shapes
  (modelscan/lineage/sketch_index.py finds them at index scale). The relation
  follows :func:`sketch_verdict`: identical sketches on every matrix read, the
  same structure and dtype are the same weights in another container
  (``conversion`` / ``same-weights`` for a file read remotely, whose digests
  are unknown); otherwise the dtypes name it (:func:`relation_for`);
- claims: the base models a file names in its own metadata (kohya hashes, GGUF
  ``general.base_model.*`` and ``general.source.*``) become ``declared-file``.

Each function returns :class:`~modelscan.lineage.rows.EdgeRow` records.

Example:
    >>> holdings = Holdings.of([])
    >>> copy_edges(holdings, ["ab"])
    []
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelscan.lineage.rows import (
    BlobInfo,
    ClaimRow,
    EdgeRow,
    Holdings,
    Origin,
    Resolved,
    TensorSketch,
    blob_edge,
)
from modelscan.refs import url_ref
from modelscan.scanner.dtypes import is_quantized
from modelscan.scanner.similarity import (
    SIMILARITY_THRESHOLD,
    Similarity,
    matrix_signature,
    weight_similarity,
)

MAX_GROUP = 64  # earliest same-shape files compared with each new one
CLAIM_RELATIONS = {"sha256-of-base": "sha256", "autov1-of-base": "autov1"}
Signature = tuple[tuple[int, ...], ...]


def relation_for(child_dtype: str | None, parent_dtype: str | None) -> str:
    """Name what correlated weights most likely are, from the two files' dtypes.

    Same dtype: a fine-tune. Child quantized: a quantization. Another float
    precision: a conversion. It is a best guess; the edge's source
    (weight-similarity) says it was inferred.
    """
    if child_dtype == parent_dtype or not child_dtype or not parent_dtype:
        return "finetune"
    return "quantized" if is_quantized(child_dtype) else "conversion"


def sketch_verdict(
    child: BlobInfo, parent: BlobInfo, sim: Similarity, *, same_structure: bool
) -> tuple[str, str]:
    """Return (relation, source) of a weight-similarity match.

    Every matrix read has the parent's sketch byte for byte, the two files have
    the same matrix shapes and dtype, and digests cannot tell them apart (one
    has no ``weights_id``: a remote read): the same weights in another
    container, ``conversion`` / ``same-weights`` when the child has no digests
    (``weight-similarity`` when only the parent lacks them, so the edges the
    digests decide keep their own source). A float16 cast has identical
    sketches too (they are float16) but another dtype: a ``conversion``; a
    quantized child is ``quantized``; a correlated one of the same dtype a
    ``finetune``.
    """
    unproven = child.weights_id is None or parent.weights_id is None
    same_dtype = child.dtype == parent.dtype
    if sim.all_identical and same_structure and unproven and same_dtype:
        nodigest = child.weights_id is None and child.content_id is None
        return "conversion", "same-weights" if nodigest else "weight-similarity"
    return relation_for(child.dtype, parent.dtype), "weight-similarity"


# --- copies and conversions -----------------------------------------------------------


def copy_edges(holdings: Holdings, shas: Iterable[str]) -> list[EdgeRow]:
    """Every other repo holding the same bytes points at the first one seen."""
    rows = []
    for sha in shas:
        origin = holdings.origin.get(sha)
        if origin is None:
            continue
        for rid in sorted(holdings.repos[sha] - {origin.repo_id}):
            rows.append(
                blob_edge(
                    child_repo_id=rid,
                    child_sha256=sha,
                    parent_sha256=sha,
                    parent_repo_id=origin.repo_id,
                    relation="copy",
                    source="identical-hash",
                    evidence=_origin_dates(origin),
                )
            )
    return rows


def _origin_dates(origin: Origin) -> dict[str, str]:
    out = {"first_seen": origin.first_seen.isoformat()}
    if origin.published_at is not None:
        out["published_at"] = origin.published_at.isoformat()
    return out


def families(members: Mapping[str, BlobInfo]) -> list[list[BlobInfo]]:
    """Group blobs that share a content_id or a weights_id (union-find)."""
    parent = {s: s for s in members}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    first: dict[tuple[str, str], str] = {}
    for b in members.values():
        for kind, value in (("c", b.content_id), ("w", b.weights_id)):
            if value is not None:
                seen = first.setdefault((kind, value), b.sha256)
                parent[find(b.sha256)] = find(seen)
    groups: dict[str, list[BlobInfo]] = defaultdict(list)
    for b in members.values():
        groups[find(b.sha256)].append(b)
    return [g for g in groups.values() if len(g) > 1]


def conversion_edges(
    members: Mapping[str, BlobInfo], holdings: Holdings
) -> list[EdgeRow]:
    """Point each later file of a content or weights family at its first upload.

    None between two files first seen in the same repo: one repo shipping two
    containers is not a separate upload.
    """
    rows: list[EdgeRow] = []
    for family in families(members):
        hosted = sorted(
            (b for b in family if b.sha256 in holdings.origin),
            key=lambda b: holdings.order(b.sha256, b.id),
        )
        if not hosted:
            continue
        root, home = hosted[0], holdings.origin[hosted[0].sha256].repo_id
        for b in hosted[1:]:
            rid = holdings.origin[b.sha256].repo_id
            if rid == home:
                continue
            same = b.content_id is not None and b.content_id == root.content_id
            rows.append(
                blob_edge(
                    child_repo_id=rid,
                    child_sha256=b.sha256,
                    parent_sha256=root.sha256,
                    parent_repo_id=home,
                    relation="conversion",
                    source="same-content" if same else "same-weights",
                    evidence={"content_id": root.content_id}
                    if same
                    else {"weights_id": root.weights_id},
                )
            )
    return rows


def same_weights(a: BlobInfo, b: BlobInfo) -> bool:
    """Tell whether two blobs hold the same tensors (content_id or weights_id)."""
    return bool(
        (a.content_id and a.content_id == b.content_id)
        or (a.weights_id and a.weights_id == b.weights_id)
    )


def first_of_each_family(members: Sequence[BlobInfo]) -> list[BlobInfo]:
    """Keep, in order, only the first blob of each content_id/weights_id family."""
    seen: set[tuple[str, str]] = set()
    out = []
    for b in members:
        keys = {(k, v) for k, v in (("c", b.content_id), ("w", b.weights_id)) if v}
        if not keys & seen:
            out.append(b)
        seen |= keys
    return out


# --- weight similarity ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParentMatch:
    """The candidate whose weights correlate best with a file, and the runners-up."""

    parent: BlobInfo
    similarity: Similarity
    ranked: list[dict[str, Any]]  # the top three as evidence: sha256, median r

    def evidence(self) -> dict[str, Any]:
        """Return the JSON evidence of the weight-similarity edge."""
        return {**self.similarity.evidence(), "candidates": self.ranked}


def best_parent(
    child: Sequence[TensorSketch],
    candidates: Sequence[BlobInfo],
    sketches: Mapping[int, Sequence[TensorSketch]],
) -> ParentMatch | None:
    """Return the candidate correlating best with ``child``, if at the threshold.

    Among equally good candidates the first (the earliest upload) wins.
    """
    scored = []
    for cand in candidates:
        sim = weight_similarity(child, sketches.get(cand.id, ()))
        if sim is not None:
            scored.append((sim.median, cand, sim))
    scored.sort(key=lambda x: -x[0])
    if not scored or scored[0][0] < SIMILARITY_THRESHOLD:
        return None
    ranked = [
        {"sha256": c.sha256, "median_correlation": round(m, 4)}
        for m, c, _ in scored[:3]
    ]
    return ParentMatch(scored[0][1], scored[0][2], ranked)


def signatures(
    shapes: Mapping[int, Sequence[tuple[int, ...]]],
) -> dict[int, Signature]:
    """Return each blob's matrix signature (its sorted matrix shapes)."""
    return {bid: matrix_signature(s) for bid, s in shapes.items()}


def similarity_edges(
    group: Sequence[BlobInfo],
    shapes: Mapping[int, Sequence[tuple[int, ...]]],
    sketches: Mapping[int, Sequence[TensorSketch]],
    holdings: Holdings,
    candidates: Mapping[int, Sequence[int]] | None = None,
    children: Iterable[int] | None = None,
) -> tuple[set[str], list[EdgeRow]]:
    """Point each fingerprinted file at the earlier one its weights correlate with.

    Without ``candidates`` a file compares with every earlier file of the same
    matrix signature; with them (child id -> candidate parent ids, from
    :func:`~modelscan.lineage.sketch_index.candidate_parents`) with its earlier
    candidates only, whatever their signature (a pruned model is compared on
    the shapes it shares). Each weights family takes part once, through its
    first upload (later ones are conversions of it).

    Args:
        group: the files taking part.
        shapes: every tensor shape of each file, by blob id.
        sketches: the sketched tensors of each file, by blob id.
        holdings: where the files were first seen (their upload order).
        candidates: each child's candidate parents (None: all of its signature).
        children: the blob ids whose parents are decided (None: all of group).

    Returns:
        Every file that took part as a child (their edges are rewritten), and
        the edges.
    """
    signature = signatures(shapes)
    members = sorted(
        (
            b
            for b in group
            if b.sha256 in holdings.origin
            and signature.get(b.id)
            and sketches.get(b.id)
        ),
        key=lambda b: holdings.order(b.sha256, b.id),
    )
    wanted = None if children is None else set(children)
    everyone = {b.sha256 for b in members if wanted is None or b.id in wanted}
    members = first_of_each_family(members)
    rank = {b.id: i for i, b in enumerate(members)}
    rows: list[EdgeRow] = []
    for i, child in enumerate(members):
        if wanted is not None and child.id not in wanted:
            continue
        if candidates is None:
            olds = [p for p in members[:i] if signature[p.id] == signature[child.id]]
        else:
            ids = candidates.get(child.id, ())
            olds = sorted(
                (members[rank[c]] for c in ids if rank.get(c, i) < i),
                key=lambda p: rank[p.id],
            )
        olds = [p for p in olds if not same_weights(p, child)]
        found = best_parent(sketches[child.id], olds, sketches)
        same = found is not None and signature[found.parent.id] == signature[child.id]
        row = similarity_edge(child, found, holdings, same) if found else None
        if row is not None:
            rows.append(row)
    return everyone, rows


def similarity_edge(
    child: BlobInfo,
    found: ParentMatch,
    holdings: Holdings,
    same_structure: bool = True,
) -> EdgeRow | None:
    """The weight-similarity edge to the parent found; None within one repo."""
    parent_repo = holdings.origin[found.parent.sha256].repo_id
    child_repo = holdings.origin[child.sha256].repo_id
    if child_repo == parent_repo:
        return None
    relation, source = sketch_verdict(
        child, found.parent, found.similarity, same_structure=same_structure
    )
    return blob_edge(
        child_repo_id=child_repo,
        child_sha256=child.sha256,
        parent_sha256=found.parent.sha256,
        parent_repo_id=parent_repo,
        relation=relation,
        source=source,
        confidence=round(found.similarity.median, 4),
        evidence=found.evidence(),
    )


# --- claims made inside files ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedParent:
    """A base a file names: the reference, the relation it implies, the claim key."""

    ref: str
    relation: str
    key: str


def claimed_parents(claims: Sequence[ClaimRow]) -> list[ClaimedParent]:
    """Return each base a file names, once.

    Kohya hashes name the base a LoRA (adapter) or checkpoint (fine-tune) was
    trained on; GGUF ``general.base_model.N.*`` names a fine-tune's base (its
    ``repo_url`` if given, else its name) and ``general.source.*`` the model it
    was converted or quantized from.
    """
    out: dict[str, ClaimedParent] = {}
    gguf: dict[str, dict[str, str]] = defaultdict(dict)
    for c in claims:
        kind = CLAIM_RELATIONS.get(c.meaning)
        if kind is not None:
            ref = f"{kind}:{c.value.strip().lower().removeprefix('0x')}"
            relation = "adapter" if "ss_network_module" in c.meta else "finetune"
            out[ref] = ClaimedParent(ref, relation, c.key)
        elif c.meaning in ("base-model", "source"):
            group, _, field_name = c.key.rpartition(".")
            gguf[group][field_name] = c.value
            gguf[group]["_dtype"] = c.dtype or ""
    for group, fields in sorted(gguf.items()):
        named = url_ref(fields.get("repo_url", "")) or fields.get("name")
        if not named:
            continue
        if group.startswith("general.source"):
            relation = "quantized" if is_quantized(fields["_dtype"]) else "conversion"
        else:
            relation = "finetune"
        key = f"{group}.repo_url" if "repo_url" in fields else f"{group}.name"
        out.setdefault(named, ClaimedParent(named, relation, key))
    return list(out.values())


def claim_edges(
    claims: Sequence[ClaimRow], holdings: Holdings, resolved: Mapping[str, Resolved]
) -> list[EdgeRow]:
    """Edges for the base-model hashes and names files state about themselves.

    Args:
        claims: the claims of some blobs.
        holdings: where those blobs were first seen (the edges' children).
        resolved: what each claimed reference names in the index.
    """
    by_blob: dict[str, list[ClaimRow]] = defaultdict(list)
    for c in claims:
        by_blob[c.sha256].append(c)
    rows = []
    for sha, found in by_blob.items():
        origin = holdings.origin.get(sha)
        if origin is None:
            continue
        named: set[str] = set()
        for p in claimed_parents(found):
            target = resolved.get(p.ref, Resolved())
            if target.sha256 == sha or (target.sha256 or p.ref) in named:
                continue  # the file itself, or a base another claim already named
            named.add(target.sha256 or p.ref)
            rows.append(
                EdgeRow(
                    child_repo_id=origin.repo_id,
                    child_sha256=sha,
                    parent_sha256=target.sha256,
                    parent_repo_id=target.repo_id,
                    parent_ref=p.ref,
                    relation=p.relation,
                    source="declared-file",
                    evidence={"claim": p.key},
                )
            )
    return rows
