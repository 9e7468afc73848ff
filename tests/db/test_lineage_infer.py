"""`modelscan link` and `lineage` on a real index: edges, reruns, increments, checks."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest
from lineage_world import DAY, T0, World, build, hf, noisy, remote, save, write_files
from safetensors.numpy import load_file, save_file
from sqlalchemy import select

from modelscan.db.store import Store
from modelscan.db.tables import LINEAGE, REPOS
from modelscan.lineage.evidence import relation_for
from modelscan.lineage.graph import lineage
from modelscan.lineage.infer import OVERLAP, link
from modelscan.lineage.subjects import resolve_subject
from modelscan.records import Fingerprint, LineageRef
from modelscan.refs import url_ref
from modelscan.scanner.fingerprint import fingerprint
from modelscan.scanner.similarity import (
    correlation,
    is_embedding,
)


@pytest.fixture(scope="module")
def fps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Fingerprint]:
    """The world's files, written and fingerprinted once per module."""
    return write_files(tmp_path_factory.mktemp("world"))


@pytest.fixture
def world(store: Store, fps: dict[str, Fingerprint]) -> World:
    """The world saved in a fresh index (both databases)."""
    return build(store, fps)


def edges(
    store: Store, *, inferred_only: bool = False
) -> set[tuple[str, str, str, str]]:
    """(child ref, parent ref or declared text, relation, source) of every edge."""

    def read(conn: object) -> set[tuple[str, str, str, str]]:
        child, parent = REPOS.alias("c"), REPOS.alias("p")
        stmt = (
            select(
                child.c.host_id,
                parent.c.host_id,
                LINEAGE.c.parent_ref,
                LINEAGE.c.relation,
                LINEAGE.c.source,
                LINEAGE.c.child_sha256,
            )
            .join(child, child.c.id == LINEAGE.c.child_repo_id)
            .outerjoin(parent, parent.c.id == LINEAGE.c.parent_repo_id)
        )
        rows = conn.execute(stmt)  # type: ignore[attr-defined]
        return {
            (c, p or ref, rel, src)
            for c, p, ref, rel, src, sha in rows
            if sha is not None or not inferred_only
        }

    return store.execute(read)  # type: ignore[no-any-return]


def watermark(store: Store) -> str:
    """The watermark the last link run saved, as saved (ISO text)."""
    state = store.link_state()
    assert state is not None
    return str(state.state["watermark"])


def expected_median(child: Fingerprint, parent: Fingerprint) -> float:
    """Median correlation over non-embedding matrices, from the scanner's sketches."""
    theirs = {t.name: t.sketch for t in parent.tensors}
    rs = [
        correlation(t.sketch, theirs[t.name])
        for t in child.tensors
        if t.sketch and len(t.shape) >= 2 and not is_embedding(t.name)
    ]
    return statistics.median(r for r in rs if r is not None)


def test_link_finds_copies_conversions_finetunes_and_claims(
    store: Store, world: World
) -> None:
    """Each kind of evidence in the world gives exactly its edge, and nothing else."""
    stats = link(store)
    assert edges(store, inferred_only=True) == {
        ("mirror/base", "org/base", "copy", "identical-hash"),
        ("101", "org/base", "copy", "identical-hash"),
        ("conv/base-bin", "org/base", "conversion", "same-content"),
        ("tuner/ft", "org/base", "finetune", "weight-similarity"),
        ("liar/ft2", "org/base", "finetune", "weight-similarity"),
        ("202", "org/base", "adapter", "declared-file"),
    }
    assert (stats.copy, stats.conversion, stats.similarity, stats.claims) == (
        2,
        1,
        2,
        1,
    )


def test_similarity_confidence_is_the_median_correlation(
    store: Store, world: World
) -> None:
    """A fine-tune's confidence is the median sketch correlation, with layer figures."""
    link(store)
    rows = store.execute(
        lambda c: c.execute(
            select(LINEAGE).where(LINEAGE.c.source == "weight-similarity")
        ).all()
    )
    by_child = {r.child_sha256: r for r in rows}
    for name in ("ft", "ft2"):
        row = by_child[world.sha[name]]
        want = expected_median(world.fps[name], world.fps["base"])
        assert row.confidence == pytest.approx(want, abs=1e-4)
        assert row.parent_sha256 == world.sha["base"]
        assert set(row.evidence["layers"]) == {"0", "1", "2", "3"}
        assert row.evidence["candidates"][0]["sha256"] == world.sha["base"]


def test_unrelated_weights_of_the_same_shape_are_not_linked(
    store: Store, world: World
) -> None:
    """Independent weights correlate near 0 and get no weight-similarity edge."""
    link(store)
    children = {c for c, _, _, src in edges(store) if src == "weight-similarity"}
    assert "other/unrelated" not in children
    assert "liar2/fresh" not in children
    base = {t.name: t.sketch for t in world.fps["base"].tensors}
    other = [
        correlation(t.sketch, base[t.name])
        for t in world.fps["other"].tensors
        if t.sketch and len(t.shape) >= 2
    ]
    assert max(abs(r) for r in other if r is not None) < 0.2


def test_link_twice_changes_nothing(store: Store, world: World) -> None:
    """A second full run writes the same rows (same ids), so cron can rerun it."""
    link(store)
    read = lambda c: sorted(  # noqa: E731
        (
            r.id,
            r.child_repo_id,
            r.parent_repo_id,
            r.parent_ref,
            r.relation,
            r.source,
            r.confidence,
        )
        for r in c.execute(select(LINEAGE))
    )
    first = store.execute(read)
    stats = link(store, full=True)
    assert store.execute(read) == first
    assert stats.removed == 0


def test_link_is_incremental(store: Store, world: World) -> None:
    """The second run looks only at what was seen after the watermark, and finds it."""
    link(store)
    newest_sighting = T0 + 40 * DAY  # civitai's page; the takedown adds no sighting
    assert watermark(store) == (newest_sighting - OVERLAP).isoformat()
    fp = world.fps["base"]
    save(
        store,
        "huggingface",
        [hf("late/base", (remote(fp, "m.safetensors", "u"),))],
        T0 + 90 * DAY,
    )
    stats = link(store)
    assert stats.blobs == 2  # the new copy, and civitai's page within the overlap
    assert ("late/base", "org/base", "copy", "identical-hash") in edges(store)
    assert watermark(store) == (T0 + 90 * DAY - OVERLAP).isoformat()
    assert link(store).blobs == 1  # nothing new: only the overlap again


def test_declared_url_reference_resolves_once_the_parent_is_crawled(
    store: Store,
) -> None:
    """A card naming its base by URL points at that repo once crawled and linked."""
    ref = LineageRef("https://huggingface.co/Late/Parent", "finetune", "declared-card")
    save(store, "huggingface", [hf("kid/model", declares=(ref,))], T0)
    link(store)
    assert edges(store) == {("kid/model", ref.parent, "finetune", "declared-card")}
    save(store, "huggingface", [hf("late/parent")], T0 + DAY)  # the Hub ignores case
    stats = link(store)
    assert stats.resolved == 1
    assert edges(store) == {("kid/model", "late/parent", "finetune", "declared-card")}


def test_a_stale_inferred_edge_is_replaced(
    store: Store, fps: dict[str, Fingerprint]
) -> None:
    """An earlier upload turning up becomes the parent; the old edge goes."""
    a, b = fps["base"], fps["bin"]
    save(
        store,
        "huggingface",
        [hf("r2/bin", (remote(b, "pytorch_model.bin", "u"),))],
        T0 + 10 * DAY,
    )
    save(
        store,
        "huggingface",
        [hf("r3/st", (remote(a, "model.safetensors", "u"),))],
        T0 + 20 * DAY,
    )
    store.save_fingerprint(a, location=a.path, seen_at=T0)
    store.save_fingerprint(b, location=b.path, seen_at=T0)
    link(store)
    assert edges(store) == {("r3/st", "r2/bin", "conversion", "same-content")}
    save(
        store, "huggingface", [hf("r1/st", (remote(a, "model.safetensors", "u"),))], T0
    )
    stats = link(store, full=True)
    assert edges(store) == {
        ("r2/bin", "r1/st", "conversion", "same-content"),
        ("r3/st", "r1/st", "copy", "identical-hash"),
    }
    assert stats.removed == 1


def test_lineage_graph_and_check(store: Store, world: World) -> None:
    """The graph holds the family; --check names declared edges the weights deny."""
    link(store)
    subj = resolve_subject(store, "hf:liar/ft2")
    graph = lineage(store, subj, check=True)
    labels = {k: n.label for k, n in graph.nodes.items()}
    parents = {
        (labels[e.parent], e.relation, e.source)
        for e in graph.parents_of(graph.roots[0])
    }
    assert parents == {
        ("hf:org/base", "finetune", "weight-similarity"),
        ("hf:other/unrelated", "finetune", "declared-card"),
    }
    [c] = graph.contradictions
    assert (c.kind, labels[c.declared_parent], labels[c.inferred_parent]) == (
        "other-parent",
        "hf:other/unrelated",
        "hf:org/base",
    )
    subj = resolve_subject(store, "hf:liar2/fresh")
    graph = lineage(store, subj, check=True)
    [c] = graph.contradictions
    assert c.kind == "low-correlation"
    assert c.correlation == pytest.approx(
        expected_median(world.fps["fresh"], world.fps["other"]), abs=1e-4
    )
    assert abs(c.correlation) < 0.2
    subj = resolve_subject(store, "hf:tuner/ft")
    assert lineage(store, subj, check=True).contradictions == []


def test_lineage_of_a_hash_starts_at_the_first_upload(
    store: Store, world: World
) -> None:
    """A hash resolves to every repo holding it; the tree starts at the first one."""
    link(store)
    subj = resolve_subject(store, world.fps["base"].autov2.upper())
    assert subj.kind == "hash"
    assert len(subj.repo_ids) == 3
    graph = lineage(store, subj)
    assert [graph.nodes[r].label for r in graph.roots] == ["hf:org/base"]


def test_lineage_of_a_local_file_compares_it_with_the_index(
    store: Store, world: World, tmp_path: Path
) -> None:
    """A file not in the index is linked on the fly to the weights it was tuned from."""
    link(store)
    base = load_file(world.fps["base"].path)
    path = tmp_path / "mine.safetensors"
    save_file(noisy(base, 99, 0.1), str(path))
    fp = fingerprint(path)
    subj = resolve_subject(store, str(path), fp=fp)
    graph = lineage(store, subj)
    [e] = graph.parents_of(graph.roots[0])
    assert (graph.nodes[e.parent].label, e.relation, e.source) == (
        "hf:org/base",
        "finetune",
        "weight-similarity",
    )
    assert e.confidence == pytest.approx(
        expected_median(fp, world.fps["base"]), abs=1e-4
    )


def test_lineage_of_a_ref_not_crawled_shows_who_declares_it(
    store: Store, world: World
) -> None:
    """A parent never crawled still shows the repos whose cards name it."""
    subj = resolve_subject(store, "hf:other/never-crawled")
    assert subj.kind == "ref"
    save(
        store,
        "huggingface",
        [
            hf(
                "kid/a",
                declares=(
                    LineageRef("hf:other/never-crawled", "merge", "declared-tag"),
                ),
            )
        ],
        T0,
    )
    graph = lineage(store, subj)
    assert [(graph.nodes[e.child].label, e.relation) for e in graph.edges] == [
        ("hf:kid/a", "merge")
    ]


def test_gguf_base_model_claim_links_to_the_named_repo(
    store: Store, world: World, tmp_path: Path
) -> None:
    """A GGUF naming its base in general.base_model.* gets a declared-file edge."""
    import gguf

    path = tmp_path / "tuned.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint32("general.base_model.count", 1)
    writer.add_string("general.base_model.0.name", "Base")
    writer.add_string(
        "general.base_model.0.repo_url", "https://huggingface.co/org/base"
    )
    rng = np.random.default_rng(8)
    writer.add_tensor(
        "blk.0.attn_q.weight", rng.standard_normal((64, 64)).astype(np.float32)
    )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    fp = fingerprint(path)
    assert {c.key for c in fp.claims} == {
        "general.base_model.0.name",
        "general.base_model.0.repo_url",
    }
    store.save_fingerprint(fp, location=str(path), seen_at=T0)
    save(
        store,
        "huggingface",
        [hf("gg/tuned", (remote(fp, "tuned.gguf", "u"),))],
        T0 + 70 * DAY,
    )
    link(store)
    assert ("gg/tuned", "org/base", "finetune", "declared-file") in edges(store)


def test_relation_follows_the_dtypes() -> None:
    """Same dtype: finetune; quantized child: quantized; other float: conversion."""
    assert relation_for("F32", "F32") == "finetune"
    assert relation_for("Q4_K", "F16") == "quantized"
    assert relation_for("F16", "F32") == "conversion"


def test_url_refs() -> None:
    """Host URLs in cards and GGUF metadata become references."""
    assert url_ref("https://huggingface.co/org/name/blob/main/x") == "hf:org/name"
    assert url_ref("https://civitai.com/models/4384/dreamshaper") == "civitai:4384"
    assert url_ref("https://example.com/org/name") is None
