"""Evidence decided over plain records: copies, conversions, similarity, claims."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from memory_index import layers, sketch
from world import SHA, build, noisy

from modelscan.lineage import evidence
from modelscan.lineage.rows import BlobInfo, ClaimRow, Holdings, Occurrence, Resolved
from modelscan.lineage.rows import TensorSketch as Sk

T = datetime(2025, 1, 1, tzinfo=UTC)


def occ(sha: str, repo: int, file_id: int, downloads: int = 0) -> Occurrence:
    """An occurrence first seen at T."""
    return Occurrence(
        sha256=sha, repo_id=repo, file_id=file_id, first_seen=T, downloads=downloads
    )


def test_copies_point_at_the_first_upload() -> None:
    """Within one sighting the more downloaded upload is the origin; others copy it."""
    holdings = Holdings.of(
        [occ("a", 1, 1), occ("a", 2, 2, downloads=9), occ("a", 3, 3)]
    )
    rows = evidence.copy_edges(holdings, ["a", "missing"])
    assert [(r.child_repo_id, r.parent_repo_id, r.relation) for r in rows] == [
        (1, 2, "copy"),
        (3, 2, "copy"),
    ]
    assert {r.key.parent_ref for r in rows} == {"sha256:a"}


def test_the_hosts_dates_name_the_origin_before_our_sightings() -> None:
    """A crawl sees a 2025 re-upload first; the one published in 2021 is the origin."""
    reupload = occ("a", 1, 1, downloads=50)
    original = Occurrence(
        sha256="a", repo_id=2, file_id=2, first_seen=T, published_at=T.replace(2021)
    )
    undated = occ("a", 3, 3)  # no host date: counted at our first sighting, T
    dated_reupload = Occurrence(
        sha256="a", repo_id=1, file_id=1, first_seen=T, published_at=T.replace(2025)
    )
    for holdings in (
        Holdings.of([reupload, original, undated]),
        Holdings.of([dated_reupload, undated, original]),
    ):
        rows = evidence.copy_edges(holdings, ["a"])
        assert {(r.child_repo_id, r.parent_repo_id) for r in rows} == {(1, 2), (3, 2)}
        assert rows[0].evidence["published_at"] == T.replace(2021).isoformat()


def test_conversions_skip_two_containers_in_one_repo() -> None:
    """Same content in another repo is a conversion; in the same repo it is not."""
    members = {
        s: BlobInfo(sha256=s, id=i, content_id="C")
        for i, s in enumerate(("a", "b", "c"))
    }
    holdings = Holdings.of([occ("a", 1, 1), occ("b", 1, 2), occ("c", 2, 3)])
    [row] = evidence.conversion_edges(members, holdings)
    assert (row.child_sha256, row.parent_sha256, row.source) == (
        "c",
        "a",
        "same-content",
    )
    assert row.evidence == {"content_id": "C"}


def test_families_join_on_either_id() -> None:
    """A shares content with B, B weights with C: one family of three."""
    members = {
        "a": BlobInfo(sha256="a", id=1, content_id="C"),
        "b": BlobInfo(sha256="b", id=2, content_id="C", weights_id="W"),
        "c": BlobInfo(sha256="c", id=3, weights_id="W"),
        "d": BlobInfo(sha256="d", id=4, weights_id="X"),
    }
    [family] = evidence.families(members)
    assert sorted(b.sha256 for b in family) == ["a", "b", "c"]


def test_similarity_finds_the_finetune_and_not_the_unrelated() -> None:
    """A noisy copy points at its base; unrelated weights of the same shape do not."""
    index, repo = build()
    group = list(index.blobs([SHA["base"], SHA["ft"], SHA["other"]]).values())
    ids = [b.id for b in group]
    everyone, rows = evidence.similarity_edges(
        group,
        index.matrix_shapes(ids),
        index.sketches(ids),
        index.holdings(SHA.values()),
    )
    assert everyone == {SHA["base"], SHA["ft"], SHA["other"]}
    [row] = rows
    assert (row.child_repo_id, row.parent_repo_id) == (
        repo["tuner/ft"],
        repo["org/base"],
    )
    assert (row.relation, row.source) == ("finetune", "weight-similarity")
    assert row.confidence is not None
    assert row.confidence > 0.95
    assert row.evidence is not None
    assert row.evidence["candidates"][0]["sha256"] == SHA["base"]


def test_best_parent_needs_the_threshold() -> None:
    """No candidate at median r >= 0.5 gives no parent; ties go to the first one."""
    base, other = layers(1), layers(2)
    child = [Sk(f"l.{i}", (16, 16), sketch(w)) for i, w in enumerate(noisy(base, 3))]
    cands = [
        BlobInfo(sha256="o", id=1),
        BlobInfo(sha256="b", id=2),
        BlobInfo(sha256="b2", id=3),
    ]
    sketches = {
        1: [Sk(f"l.{i}", (16, 16), sketch(w)) for i, w in enumerate(other)],
        2: [Sk(f"l.{i}", (16, 16), sketch(w)) for i, w in enumerate(base)],
        3: [Sk(f"l.{i}", (16, 16), sketch(w)) for i, w in enumerate(base)],
    }
    found = evidence.best_parent(child, cands, sketches)
    assert found is not None
    assert found.parent.sha256 == "b"
    assert evidence.best_parent(child, cands[:1], sketches) is None


def test_relation_follows_the_dtypes() -> None:
    """Same dtype: finetune; quantized child: quantized; other float: conversion."""
    assert evidence.relation_for("F32", "F32") == "finetune"
    assert evidence.relation_for("Q4_K", "F16") == "quantized"
    assert evidence.relation_for("I8", "F32") == "quantized"
    assert evidence.relation_for("F16", "F32") == "conversion"


def test_claimed_parents_of_kohya_and_gguf() -> None:
    """Kohya hashes name an adapter's base; GGUF source names a quantization's."""
    claims = [
        ClaimRow(sha256="x", key="ss_sd_model_hash", value="0xABCDEF12",
                 meaning="autov1-of-base", meta={"ss_network_module": "lora"}),
        ClaimRow(sha256="x", key="general.source.repo_url",
                 value="https://huggingface.co/org/base/tree/main", meaning="source",
                 dtype="Q4_K"),
        ClaimRow(sha256="x", key="general.base_model.0.name", value="Base",
                 meaning="base-model"),
    ]  # fmt: skip
    got = [(p.ref, p.relation, p.key) for p in evidence.claimed_parents(claims)]
    assert got == [
        ("autov1:abcdef12", "adapter", "ss_sd_model_hash"),
        ("Base", "finetune", "general.base_model.0.name"),
        ("hf:org/base", "quantized", "general.source.repo_url"),
    ]


def test_claim_edges_skip_the_file_itself() -> None:
    """A file naming its own hash gets no edge; a named base gets declared-file."""
    holdings = Holdings.of([occ("x", 7, 1)])
    claims = [
        ClaimRow(sha256="x", key="sshs", value="x", meaning="sha256-of-base"),
        ClaimRow(sha256="x", key="ss_new", value="b", meaning="sha256-of-base"),
    ]
    resolved = {"sha256:x": Resolved("x", 7), "sha256:b": Resolved("b", 1)}
    [row] = evidence.claim_edges(claims, holdings, resolved)
    assert (row.child_repo_id, row.parent_repo_id, row.parent_ref) == (7, 1, "sha256:b")
    assert (row.relation, row.source, row.confidence) == (
        "finetune",
        "declared-file",
        None,
    )


def test_windows_need_spread() -> None:
    """A flat window is no evidence, so a file of zeros finds no parent."""
    zeros = [Sk("l.0", (16, 16), sketch(np.zeros(256)))]
    cands = [BlobInfo(sha256="z", id=1)]
    assert evidence.best_parent(zeros, cands, {1: zeros}) is None
