"""``modelscan lineage``: a subject's ancestors and descendants, walked over edge rows.

The graph's nodes are repos (``repo:12``), blobs known only by hash
(``blob:<sha256>``), references not crawled yet (``ref:<text>``) and a local
file (``file:<path>``); each edge keeps its relation, source, confidence and
evidence. The walk asks the index for edge rows breadth-first, up and down.

Example:
    >>> graph = lineage(store, resolve_subject(store, "hf:org/m"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelscan.lineage.rows import EdgeRow, LineageIndex
from modelscan.lineage.subjects import Subject
from modelscan.refs import ref_for, repo_ref_forms

DEFAULT_DEPTH = 10


@dataclass(frozen=True, slots=True)
class Node:
    """A repo, a blob known only by hash, or a reference not crawled yet."""

    key: str  # "repo:12", "blob:<sha256>", "ref:<text>", "file:<path>"
    label: str
    host: str | None = None
    host_id: str | None = None
    owner: str | None = None
    status: str | None = None
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class Edge:
    """A parent edge: ``child`` derives from ``parent`` (node keys)."""

    child: str
    parent: str
    relation: str
    source: str
    confidence: float | None
    parent_ref: str
    child_sha256: str | None = None
    parent_sha256: str | None = None
    evidence: dict[str, Any] | None = None

    @property
    def declared(self) -> bool:
        """Tell whether a host or file stated this edge (rather than measured)."""
        return self.source.startswith("declared")

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class Contradiction:
    """A declared edge the weights disagree with."""

    child: str  # node key
    declared_parent: str  # node key
    relation: str
    source: str
    kind: str  # other-parent | low-correlation
    message: str
    inferred_parent: str | None = None
    correlation: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass
class LineageGraph:
    """The subject's family: nodes, edges, and (with --check) contradictions."""

    subject: Subject
    roots: list[str]  # the subject's node keys
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    contradictions: list[Contradiction] = field(default_factory=list)

    def parents_of(self, key: str) -> list[Edge]:
        """Edges from ``key`` up to its parents."""
        return [e for e in self.edges if e.child == key]

    def children_of(self, key: str) -> list[Edge]:
        """Edges from ``key``'s children up to it."""
        return [e for e in self.edges if e.parent == key]

    def label(self, key: str) -> str:
        """The label of a node (its key when the graph lacks it)."""
        return self.nodes[key].label if key in self.nodes else key

    def to_json(self) -> dict[str, Any]:
        """Return the JSON document ``--format json`` prints."""
        s = self.subject
        return {
            "subject": {
                "text": s.text,
                "kind": s.kind,
                "label": s.label,
                "sha256": list(s.sha256s),
                "roots": self.roots,
            },
            "nodes": [n.to_json() for n in self.nodes.values()],
            "edges": [e.to_json() for e in self.edges],
            "contradictions": [c.to_json() for c in self.contradictions],
        }


def repo_id_of(key: str) -> int:
    """The repo id in a node key ``repo:<id>``."""
    return int(key.split(":", 1)[1])


def parent_key(row: EdgeRow) -> str:
    """The node key of the parent an edge row names."""
    if row.parent_repo_id is not None:
        return f"repo:{row.parent_repo_id}"
    if row.parent_sha256 is not None:
        return f"blob:{row.parent_sha256}"
    return f"ref:{row.parent_ref}"


def node_for(key: str, ref: str) -> Node:
    """A node for a parent not in the repos table: a blob or a reference."""
    if key.startswith("blob:"):
        return Node(key, f"sha256:{key[len('blob:') :][:12]}")
    return Node(key, ref)


def graph_edge(row: EdgeRow, child: str | None = None) -> Edge:
    """The graph edge of an edge row (``child`` overrides the child's node key)."""
    return Edge(
        child or f"repo:{row.child_repo_id}",
        parent_key(row),
        row.relation,
        row.source,
        row.confidence,
        row.parent_ref,
        row.child_sha256,
        row.parent_sha256,
        row.evidence,
    )


class GraphBuilder:
    """Adds edge rows and the nodes they name to a graph, each edge once."""

    def __init__(self, index: LineageIndex, graph: LineageGraph) -> None:
        self.index = index
        self.graph = graph
        self.seen: set[tuple[str, str, str, str]] = set()

    def add(self, e: Edge) -> Edge:
        """Add an edge unless the graph has it; add its parent node if not a repo."""
        key = (e.child, e.parent_ref, e.relation, e.source)
        if key not in self.seen:
            self.seen.add(key)
            self.graph.edges.append(e)
        if not e.parent.startswith("repo:"):
            self.graph.nodes.setdefault(e.parent, node_for(e.parent, e.parent_ref))
        return e

    def add_rows(self, rows: Sequence[EdgeRow]) -> list[Edge]:
        """Add edge rows and load the repos they name."""
        self.load_repos(
            {r.child_repo_id for r in rows} | {r.parent_repo_id for r in rows}
        )
        return [self.add(graph_edge(r)) for r in rows]

    def load_repos(self, ids: Iterable[int | None]) -> None:
        """Add a node for each repo the graph lacks."""
        want = {i for i in ids if i is not None and f"repo:{i}" not in self.graph.nodes}
        for r in self.index.repos(want).values():
            key = f"repo:{r.id}"
            self.graph.nodes[key] = Node(
                key,
                ref_for(r.host, r.host_id),
                r.host,
                r.host_id,
                r.owner,
                r.status,
                r.url,
            )


class _Walker(GraphBuilder):
    """Breadth-first walks up and down the edges."""

    def run(self, depth: int, local: Sequence[Edge]) -> None:
        subject = self.graph.subject
        roots = [f"repo:{r}" for r in subject.repo_ids]
        if subject.kind == "ref":
            roots = [f"ref:{subject.refs[0]}"]
            self.graph.nodes[roots[0]] = Node(roots[0], subject.label)
        if subject.fingerprint is not None and not subject.repo_ids:
            roots = [f"file:{subject.text}"]
            self.graph.nodes[roots[0]] = Node(roots[0], subject.label, host="local")
            for e in local:
                self.add(e)
            self.load_repos(
                repo_id_of(e.parent) for e in local if e.parent.startswith("repo:")
            )
        self.graph.roots = self._top_roots(roots)
        self.load_repos(subject.repo_ids)
        self._walk_up(roots, depth)
        self._walk_down(roots, depth)

    def _top_roots(self, roots: list[str]) -> list[str]:
        """Among several holders of a hash, show those that copy no other holder."""
        if len(roots) < 2:
            return roots
        ids = {repo_id_of(r) for r in roots}
        copies = {
            f"repo:{e.child_repo_id}"
            for e in self.index.edges_from(ids)
            if e.parent_repo_id in ids
        }
        return [r for r in roots if r not in copies] or roots

    def _walk_up(self, start: Sequence[str], depth: int) -> None:
        frontier = [k for k in start if k.startswith("repo:")]
        frontier += [e.parent for e in self.graph.edges if e.parent.startswith("repo:")]
        done: set[str] = set()
        for _ in range(depth):
            todo = sorted(set(frontier) - done)
            if not todo:
                return
            done.update(todo)
            found = self.add_rows(self.index.edges_from(repo_id_of(k) for k in todo))
            frontier = [e.parent for e in found if e.parent.startswith("repo:")]

    def _walk_down(self, start: Sequence[str], depth: int) -> None:
        frontier, done = list(start), set[str]()
        for _ in range(depth):
            todo = sorted(set(frontier) - done)
            if not todo:
                return
            done.update(todo)
            ids = [repo_id_of(k) for k in todo if k.startswith("repo:")]
            names = self._ref_forms(todo)
            if not ids and not names:
                return
            rows = self.index.edges_to(ids, parent_refs=names)
            frontier = [e.child for e in self.add_rows(rows)]

    def _ref_forms(self, keys: Sequence[str]) -> list[str]:
        out = [k[len("ref:") :] for k in keys if k.startswith("ref:")]
        out += list(self.graph.subject.refs)
        for k in keys:
            node = self.graph.nodes.get(k)
            if k.startswith("repo:") and node and node.host and node.host_id:
                out += repo_ref_forms(node.host, node.host_id, node.url)
        return sorted(set(out))


def lineage(
    index: LineageIndex,
    subject: Subject,
    *,
    depth: int = DEFAULT_DEPTH,
    check: bool = False,
) -> LineageGraph:
    """Return the subject's ancestors and descendants up to ``depth`` edges away.

    A local file not in the index is first compared with it on the fly
    (modelscan/lineage/local.py); ``check`` adds the contradictions
    (modelscan/lineage/check.py).
    """
    from modelscan.lineage import check as checks
    from modelscan.lineage import local

    graph = LineageGraph(subject, [])
    found: list[Edge] = []
    if subject.fingerprint is not None and not subject.repo_ids:
        found = local.infer_for_fingerprint(
            index, subject.fingerprint, f"file:{subject.text}"
        )
    _Walker(index, graph).run(depth, found)
    if check:
        graph.contradictions = checks.find_contradictions(index, graph)
    return graph
