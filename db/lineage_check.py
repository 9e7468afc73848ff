"""``modelscan lineage --check``: declared edges that the weights contradict.

A host card or a file can name the wrong base model. Two contradictions are
reported for each declared edge whose parent is in the index:

- ``other-parent``: the child's inferred edges (identical hash, same content
  or weights, weight similarity) point at other weights than the declared
  parent's;
- ``low-correlation``: a declared fine-tune whose fingerprinted weights do not
  correlate with the declared parent's (median r under 0.2), while both can
  be compared.

Example:
    >>> graph.contradictions = find_contradictions(conn, graph)  # doctest: +SKIP
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from modelscan.db.lineage_evidence import load_blobs, load_sketches
from modelscan.db.lineage_graph import (
    SAME_WEIGHTS_SOURCES,
    Contradiction,
    Edge,
    LineageGraph,
    _id,
    _Walker,
    repo_model_blobs,
)
from modelscan.db.tables import LINEAGE
from modelscan.db.weights import UNRELATED_BELOW, weight_similarity


def find_contradictions(conn: Connection, graph: LineageGraph) -> list[Contradiction]:
    """Declared edges in the graph that the weights contradict."""
    out: list[Contradiction] = []
    for e in graph.edges:
        if not e.declared or not e.parent.startswith("repo:"):
            continue
        inferred = [
            i
            for i in _inferred_edges(conn, graph, e.child)
            if i.source in SAME_WEIGHTS_SOURCES and i.parent != e.child
        ]
        c = _other_parent(conn, graph, e, inferred)
        if c is None and e.relation == "finetune":
            c = _low_correlation(conn, graph, e)
        if c is not None:
            out.append(c)
    return out


def _inferred_edges(conn: Connection, graph: LineageGraph, child: str) -> list[Edge]:
    found = [e for e in graph.edges if e.child == child and not e.declared]
    if not found and child.startswith("repo:"):
        stmt = select(LINEAGE).where(
            LINEAGE.c.child_repo_id == _id(child),
            LINEAGE.c.source.in_(SAME_WEIGHTS_SOURCES),
        )
        walker = _Walker(conn, graph)
        found = [walker._edge(r) for r in conn.execute(stmt)]
    return found


def _other_parent(
    conn: Connection, graph: LineageGraph, e: Edge, inferred: list[Edge]
) -> Contradiction | None:
    if not inferred:
        return None
    declared_blobs = set(repo_model_blobs(conn, _id(e.parent)))
    for i in inferred:
        if i.parent == e.parent or (
            i.parent_sha256 and i.parent_sha256 in declared_blobs
        ):
            return None
    i = max(inferred, key=lambda x: x.confidence or 0.0)
    name = graph.nodes[i.parent].label if i.parent in graph.nodes else i.parent
    declared = graph.nodes[e.parent].label
    what = f"{i.relation} by {i.source}" + (
        f", r={i.confidence:.2f}" if i.confidence else ""
    )
    return Contradiction(
        e.child,
        e.parent,
        e.relation,
        e.source,
        "other-parent",
        f"declared parent {declared} but the weights say {name} ({what})",
        i.parent,
        i.confidence,
    )


def _low_correlation(
    conn: Connection, graph: LineageGraph, e: Edge
) -> Contradiction | None:
    child_blobs = load_blobs(conn, repo_model_blobs(conn, _id(e.child)))
    parent_blobs = load_blobs(conn, repo_model_blobs(conn, _id(e.parent)))
    kids = [b for b in child_blobs.values() if b.parameter_count]
    olds = [b for b in parent_blobs.values() if b.parameter_count]
    if not kids or not olds:
        return None
    sketches = load_sketches(conn, [b.id for b in kids + olds])
    best: float | None = None
    for k in kids:
        for p in olds:
            if not sketches.get(k.id) or not sketches.get(p.id):
                continue
            sim = weight_similarity(sketches[k.id], sketches[p.id])
            if sim is not None and (best is None or sim.median > best):
                best = sim.median
    if best is None or best >= UNRELATED_BELOW:
        return None
    declared = graph.nodes[e.parent].label
    return Contradiction(
        e.child,
        e.parent,
        e.relation,
        e.source,
        "low-correlation",
        f"declared finetune of {declared} but the sketch correlation "
        f"with it is {best:.2f} (< {UNRELATED_BELOW})",
        None,
        round(best, 4),
    )
