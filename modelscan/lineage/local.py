"""A local file not in the index, compared with it on the fly (``lineage FILE``).

The same evidence as ``link`` (modelscan/lineage/evidence.py), with the file's
own fingerprint as the child: same content or weights first, else the best
weight-similarity parent among files of its parameter count, plus the bases
its metadata names.

Example:
    >>> edges = infer_for_fingerprint(store, fingerprint("m.safetensors"), "file:m")
    ... # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from modelscan.lineage import evidence
from modelscan.lineage.graph import Edge
from modelscan.lineage.rows import (
    BlobInfo,
    ClaimRow,
    Holdings,
    LineageIndex,
    TensorSketch,
)
from modelscan.records import Fingerprint
from modelscan.scanner.dtypes import dominant_dtype
from modelscan.scanner.similarity import matrix_signature

NEVER = datetime.max.replace(tzinfo=UTC)  # sorts blobs with no hosted copy last


def fingerprint_blob(fp: Fingerprint) -> tuple[BlobInfo, list[TensorSketch]]:
    """The blob row and sketches a fingerprint would have in the index."""
    info = BlobInfo(
        sha256=fp.sha256,
        id=-1,
        content_id=fp.content_id,
        weights_id=fp.weights_id,
        structure_id=fp.structure_id,
        dtype=dominant_dtype((t.dtype, t.shape) for t in fp.tensors),
        parameter_count=fp.parameter_count,
    )
    sketches = [TensorSketch(t.name, t.shape, t.sketch) for t in fp.tensors if t.sketch]
    return info, sketches


def fingerprint_claims(fp: Fingerprint) -> list[ClaimRow]:
    """The claim rows a fingerprint would have in the index."""
    dtype = dominant_dtype((t.dtype, t.shape) for t in fp.tensors)
    return [
        ClaimRow(
            sha256=fp.sha256,
            key=c.key,
            value=c.value,
            meaning=c.meaning,
            dtype=dtype,
            meta=fp.metadata,
        )
        for c in fp.claims
    ]


def infer_for_fingerprint(index: LineageIndex, fp: Fingerprint, key: str) -> list[Edge]:
    """Edges from a local file (node ``key``) to what the index holds."""
    out = _same_weights(index, fp, key) or _similar(index, fp, key)
    claims = evidence.claimed_parents(fingerprint_claims(fp))
    resolved = index.resolve_refs(p.ref for p in claims)
    for p in claims:
        target = resolved[p.ref]
        parent = (
            f"repo:{target.repo_id}"
            if target.repo_id is not None
            else f"blob:{target.sha256}"
            if target.sha256
            else f"ref:{p.ref}"
        )
        out.append(
            Edge(
                key,
                parent,
                p.relation,
                "declared-file",
                None,
                p.ref,
                fp.sha256,
                target.sha256,
                {"claim": p.key},
            )  # fmt: skip
        )
    return out


def _same_weights(index: LineageIndex, fp: Fingerprint, key: str) -> list[Edge]:
    members = index.blob_families(
        [fp.content_id] if fp.content_id else [],
        [fp.weights_id] if fp.weights_id else [],
    )
    same = lambda b: fp.content_id is not None and b.content_id == fp.content_id  # noqa: E731
    ordered = sorted(members.values(), key=lambda b: (not same(b), b.id))
    holdings = index.holdings(members)
    out = []
    for b in ordered:
        origin = holdings.origin.get(b.sha256)
        if origin is not None:
            source = "same-content" if same(b) else "same-weights"
            out.append(
                Edge(
                    key,
                    f"repo:{origin.repo_id}",
                    "conversion",
                    source,
                    1.0,
                    f"sha256:{b.sha256}",
                    fp.sha256,
                    b.sha256,
                )  # fmt: skip
            )
    return out


def _same_shape_first_upload_first(
    own: Sequence[TensorSketch],
    candidates: Sequence[BlobInfo],
    sketches: Mapping[int, Sequence[TensorSketch]],
    holdings: Holdings,
) -> list[BlobInfo]:
    """Candidates with the file's matrix shapes, earliest upload first.

    Among equally good parents the first one seen wins; blobs never hosted last.
    """
    want = matrix_signature(t.shape for t in own)
    olds = [
        b
        for b in candidates
        if sketches.get(b.id)
        and matrix_signature(t.shape for t in sketches[b.id]) == want
    ]
    return sorted(
        olds,
        key=lambda b: (
            holdings.order(b.sha256, b.id)
            if b.sha256 in holdings.origin
            else (NEVER, 0, 0, b.id)
        ),
    )


def _similar(index: LineageIndex, fp: Fingerprint, key: str) -> list[Edge]:
    info, own = fingerprint_blob(fp)
    if not own:
        return []
    candidates = index.shape_groups([fp.parameter_count], evidence.MAX_GROUP)
    sketches = index.sketches(b.id for b in candidates)
    holdings = index.holdings(b.sha256 for b in candidates)
    olds = _same_shape_first_upload_first(own, candidates, sketches, holdings)
    found = evidence.best_parent(own, olds, sketches)
    if found is None:
        return []
    origin = holdings.origin.get(found.parent.sha256)
    node = f"repo:{origin.repo_id}" if origin else f"blob:{found.parent.sha256}"
    return [
        Edge(
            key,
            node,
            evidence.relation_for(info.dtype, found.parent.dtype),
            "weight-similarity",
            round(found.similarity.median, 4),
            f"sha256:{found.parent.sha256}",
            fp.sha256,
            found.parent.sha256,
            found.evidence(),
        )
    ]
