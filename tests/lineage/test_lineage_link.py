"""``link``, the graph walk and ``--check`` over an in-memory index: no database."""

from __future__ import annotations

from memory_index import T0
from world import SHA, build

from modelscan.lineage.graph import lineage
from modelscan.lineage.infer import link
from modelscan.lineage.subjects import resolve_subject


def edge_set(index) -> set[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    """(child host id, parent host id or ref, relation, source) of every edge."""
    name = {r.id: r.host_id for r in index.repo_rows.values()}
    return {
        (name[e.child_repo_id], name.get(e.parent_repo_id, e.parent_ref), e.relation,
         e.source)
        for e in index.edges
    }  # fmt: skip


def test_link_writes_each_kind_of_evidence() -> None:
    """Copies, the conversion, the two fine-tunes and the LoRA claim, nothing else."""
    index, _ = build()
    stats = link(index, clock=lambda: T0)
    inferred = {e for e in edge_set(index) if e[3] != "declared-card"}
    assert inferred == {
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
    assert index.state is not None
    assert index.state.watermark is not None


def test_link_twice_changes_nothing() -> None:
    """A second run rewrites the same edges and removes none."""
    index, _ = build()
    link(index, clock=lambda: T0)
    first = sorted((e.id, e.key) for e in index.edges)
    stats = link(index, full=True, clock=lambda: T0)
    assert sorted((e.id, e.key) for e in index.edges) == first
    assert stats.removed == 0


def test_lineage_walks_down_from_the_base() -> None:
    """The base's descendants are every related repo, each edge once."""
    index, _ = build()
    link(index, clock=lambda: T0)
    graph = lineage(index, resolve_subject(index, "hf:org/base"))
    kids = {(graph.label(e.child), e.relation, e.source) for e in graph.edges}
    assert ("hf:mirror/base", "copy", "identical-hash") in kids
    assert ("hf:tuner/ft", "finetune", "declared-card") in kids
    assert ("civitai:202", "adapter", "declared-file") in kids
    assert len(graph.edges) == len({(e.child, e.parent_ref, e.relation, e.source)
                                    for e in graph.edges})  # fmt: skip


def test_check_names_both_kinds_of_contradiction() -> None:
    """A wrong declared parent: other-parent; uncorrelated weights: low-correlation."""
    index, _ = build()
    link(index, clock=lambda: T0)
    [c] = lineage(
        index, resolve_subject(index, "hf:liar/ft2"), check=True
    ).contradictions
    assert c.kind == "other-parent"
    assert (
        "declared parent hf:other/unrelated but the weights say hf:org/base"
        in c.message
    )
    graph = lineage(index, resolve_subject(index, "hf:liar2/fresh"), check=True)
    [c] = graph.contradictions
    assert c.kind == "low-correlation"
    assert c.correlation is not None
    assert abs(c.correlation) < 0.2
    ok = lineage(index, resolve_subject(index, "hf:tuner/ft"), check=True)
    assert ok.contradictions == []


def test_a_hash_subject_starts_at_the_first_upload() -> None:
    """A hash resolves to every holder; the tree's root is the first one."""
    index, _ = build()
    link(index, clock=lambda: T0)
    subject = resolve_subject(index, SHA["base"])
    assert (subject.kind, len(subject.repo_ids)) == ("hash", 3)
    graph = lineage(index, subject)
    assert [graph.label(r) for r in graph.roots] == ["hf:org/base"]
