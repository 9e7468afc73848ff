"""``modelscan lineage --check``: declared edges that the weights contradict.

A host card or a file can name the wrong base model. Two contradictions are
reported for each declared edge whose parent is in the index:

- ``other-parent``: the child's inferred edges (identical hash, same content
  or weights, weight similarity) point at other weights than the declared
  parent's;
- ``low-correlation``: a declared fine-tune whose fingerprinted weights do not
  correlate with the declared parent's (best median r under 0.2), while both
  can be compared.

Example:
    >>> graph.contradictions = find_contradictions(store, graph)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from modelscan.lineage.graph import (
    Contradiction,
    Edge,
    GraphBuilder,
    LineageGraph,
    graph_edge,
    repo_id_of,
)
from modelscan.lineage.rows import INFERRED_SOURCES, LineageIndex
from modelscan.lineage.subjects import model_blobs
from modelscan.scanner.similarity import UNRELATED_BELOW, weight_similarity


def find_contradictions(
    index: LineageIndex, graph: LineageGraph
) -> list[Contradiction]:
    """Declared edges in the graph that the weights contradict."""
    out: list[Contradiction] = []
    for e in graph.edges:
        if not e.declared or not e.parent.startswith("repo:"):
            continue
        inferred = [
            i
            for i in _inferred_edges(index, graph, e.child)
            if i.source in INFERRED_SOURCES and i.parent != e.child
        ]
        found = other_parent(
            graph, e, inferred, model_blobs(index, repo_id_of(e.parent))
        )
        if found is None and e.relation == "finetune":
            found = _low_correlation(index, graph, e)
        if found is not None:
            out.append(found)
    return out


def _inferred_edges(index: LineageIndex, graph: LineageGraph, child: str) -> list[Edge]:
    found = [e for e in graph.edges if e.child == child and not e.declared]
    if not found and child.startswith("repo:"):
        rows = index.edges_from([repo_id_of(child)], sources=INFERRED_SOURCES)
        builder = GraphBuilder(index, graph)
        found = [builder.add(graph_edge(r)) for r in rows]
    return found


def other_parent(
    graph: LineageGraph,
    e: Edge,
    inferred: Sequence[Edge],
    declared_blobs: Sequence[str],
) -> Contradiction | None:
    """The ``other-parent`` contradiction of a declared edge, if the weights say so.

    Args:
        graph: the graph holding the nodes' labels.
        e: a declared edge.
        inferred: the child's inferred edges.
        declared_blobs: the model files of the declared parent.
    """
    if not inferred:
        return None
    for i in inferred:
        if i.parent == e.parent or (
            i.parent_sha256 and i.parent_sha256 in declared_blobs
        ):
            return None
    i = max(inferred, key=lambda x: x.confidence or 0.0)
    what = f"{i.relation} by {i.source}" + (
        f", r={i.confidence:.2f}" if i.confidence else ""
    )
    return Contradiction(
        e.child,
        e.parent,
        e.relation,
        e.source,
        "other-parent",
        f"declared parent {graph.label(e.parent)} but the weights say "
        f"{graph.label(i.parent)} ({what})",
        i.parent,
        i.confidence,
    )


def _low_correlation(
    index: LineageIndex, graph: LineageGraph, e: Edge
) -> Contradiction | None:
    kids = [
        b
        for b in index.blobs(model_blobs(index, repo_id_of(e.child))).values()
        if b.parameter_count
    ]
    olds = [
        b
        for b in index.blobs(model_blobs(index, repo_id_of(e.parent))).values()
        if b.parameter_count
    ]
    sketches = index.sketches(b.id for b in kids + olds)
    medians = [
        sim.median
        for k in kids
        for p in olds
        if (sim := weight_similarity(sketches.get(k.id, ()), sketches.get(p.id, ())))
    ]
    if not medians or max(medians) >= UNRELATED_BELOW:
        return None
    best = max(medians)
    return Contradiction(
        e.child,
        e.parent,
        e.relation,
        e.source,
        "low-correlation",
        f"declared finetune of {graph.label(e.parent)} but the sketch correlation "
        f"with it is {best:.2f} (< {UNRELATED_BELOW})",
        None,
        round(best, 4),
    )
