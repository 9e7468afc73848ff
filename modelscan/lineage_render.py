"""Render a lineage graph: a tree for the terminal, JSON, Graphviz DOT, GraphML.

Edges point from parent to child in DOT and GraphML (the direction weights
travel), so Graphviz, Gephi and ``networkx.read_graphml`` draw a family tree.

Example:
    >>> print(render(graph, "dot"))  # doctest: +SKIP
    digraph lineage { ... }
"""

from __future__ import annotations

import json
from collections.abc import Callable
from xml.etree import ElementTree as ET

from modelscan.lineage.graph import Edge, LineageGraph, Node

FORMATS = ("text", "json", "dot", "graphml")
GRAPHML_NS = "http://graphml.graphdrawing.org/xmlns"
RELATION_ORDER = ("copy", "conversion", "finetune", "adapter", "quantized", "merge")


def render(graph: LineageGraph, fmt: str) -> str:
    """Return the graph in ``fmt`` (one of :data:`FORMATS`)."""
    renderers: dict[str, Callable[[LineageGraph], str]] = {
        "text": render_text,
        "json": lambda g: json.dumps(g.to_json(), indent=2, default=str),
        "dot": render_dot,
        "graphml": render_graphml,
    }
    return renderers[fmt](graph)


def edge_text(e: Edge) -> str:
    """Describe an edge: relation, source, confidence."""
    text = f"{e.relation}, {e.source}"
    if e.confidence is not None:
        text += f", {e.confidence:.2f}"
    return text


def edges_text(edges: list[Edge]) -> str:
    """Describe the edges between two nodes, one phrase per relation and source.

    Several files related the same way are counted, not repeated:
    ``copy (6 files, identical-hash)``; the best confidence is shown when not
    all of them are certain.

    >>> e = Edge("repo:2", "repo:1", "copy", "identical-hash", 1.0, "sha256:ab")
    >>> edges_text([e, e])
    'copy (2 files, identical-hash)'
    """
    groups: dict[tuple[str, str], list[Edge]] = {}
    for e in edges:
        groups.setdefault((e.relation, e.source), []).append(e)
    phrases = []
    for (relation, source), same in groups.items():
        if len(same) == 1:
            phrases.append(edge_text(same[0]))
            continue
        known = [e.confidence for e in same if e.confidence is not None]
        best = f", best {max(known):.2f}" if known and min(known) < 1.0 else ""
        phrases.append(f"{relation} ({len(same)} files, {source}{best})")
    return "; ".join(phrases)


def node_text(n: Node) -> str:
    """Describe a node: its label, and its owner and status when known."""
    facts = [x for x in (n.owner, n.status) if x]
    if n.key.startswith("ref:"):
        facts.append("not in the index")
    return n.label + (f" ({', '.join(facts)})" if facts else "")


def _sort_key(graph: LineageGraph, e: Edge, other: str) -> tuple[int, str]:
    rank = RELATION_ORDER.index(e.relation) if e.relation in RELATION_ORDER else 99
    return rank, graph.nodes[other].label if other in graph.nodes else other


def _tree(graph: LineageGraph, root: str, *, up: bool) -> list[str]:
    lines = [node_text(graph.nodes[root]) if root in graph.nodes else root]
    shown = {root}

    def walk(key: str, prefix: str) -> None:
        by_node: dict[str, list[Edge]] = {}
        for e in graph.parents_of(key) if up else graph.children_of(key):
            by_node.setdefault(e.parent if up else e.child, []).append(e)
        order = sorted(
            by_node, key=lambda k: min(_sort_key(graph, e, k) for e in by_node[k])
        )
        for i, other in enumerate(order):
            last = i == len(order) - 1
            node = graph.nodes.get(other)
            label = node_text(node) if node else other
            how = edges_text(by_node[other])
            again = other in shown
            tail = "  (shown above)" if again else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{label}  [{how}]{tail}")
            if not again:
                shown.add(other)
                walk(other, prefix + ("    " if last else "│   "))

    walk(root, "")
    return lines


def render_text(graph: LineageGraph) -> str:
    """Return ancestors and descendants of the subject as trees."""
    out = [f"subject: {graph.subject.label}"]
    for title, up in (("ancestors", True), ("descendants", False)):
        out.append(f"{title}:")
        trees = [_tree(graph, r, up=up) for r in graph.roots]
        if all(len(t) == 1 for t in trees):
            out.append("  (none known)")
            continue
        for tree in trees:
            out += ["  " + line for line in tree]
    if graph.contradictions:
        out.append("check:")
        for c in graph.contradictions:
            child = graph.nodes[c.child].label if c.child in graph.nodes else c.child
            out.append(f"  ! {child}: {c.message}")
    return "\n".join(out)


def _dot_quote(text: str) -> str:
    return (
        '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    )


def render_dot(graph: LineageGraph) -> str:
    """Return Graphviz DOT: parent -> child, inferred edges dashed."""
    lines = ["digraph lineage {", "  rankdir=TB;", "  node [shape=box];"]
    for key, n in graph.nodes.items():
        attrs = [f"label={_dot_quote(node_text(n))}"]
        if key in graph.roots:
            attrs.append("penwidth=2")
        if key.startswith("ref:"):
            attrs.append("style=dotted")
        lines.append(f"  {_dot_quote(key)} [{', '.join(attrs)}];")
    for e in graph.edges:
        attrs = [f"label={_dot_quote(edge_text(e).replace(', ', chr(10), 1))}"]
        if not e.declared:
            attrs.append("style=dashed")
        lines.append(
            f"  {_dot_quote(e.parent)} -> {_dot_quote(e.child)} [{', '.join(attrs)}];"
        )
    lines.append("}")
    return "\n".join(lines)


_NODE_KEYS = (
    ("label", "string"),
    ("host", "string"),
    ("host_id", "string"),
    ("owner", "string"),
    ("status", "string"),
    ("url", "string"),
)
_EDGE_KEYS = (
    ("relation", "string"),
    ("source", "string"),
    ("confidence", "double"),
    ("parent_ref", "string"),
    ("child_sha256", "string"),
    ("parent_sha256", "string"),
)


def render_graphml(graph: LineageGraph) -> str:
    """Return GraphML (readable by networkx, Gephi, yEd): parent -> child."""
    ET.register_namespace("", GRAPHML_NS)
    root = ET.Element(f"{{{GRAPHML_NS}}}graphml")
    for scope, keys in (("node", _NODE_KEYS), ("edge", _EDGE_KEYS)):
        for name, kind in keys:
            ET.SubElement(
                root,
                f"{{{GRAPHML_NS}}}key",
                {
                    "id": f"{scope[0]}_{name}",
                    "for": scope,
                    "attr.name": name,
                    "attr.type": kind,
                },
            )
    g = ET.SubElement(
        root, f"{{{GRAPHML_NS}}}graph", {"id": "lineage", "edgedefault": "directed"}
    )
    for key, n in graph.nodes.items():
        el = ET.SubElement(g, f"{{{GRAPHML_NS}}}node", {"id": key})
        _data(el, "n", {name: getattr(n, name) for name, _ in _NODE_KEYS})
    for i, e in enumerate(graph.edges):
        el = ET.SubElement(
            g,
            f"{{{GRAPHML_NS}}}edge",
            {"id": f"e{i}", "source": e.parent, "target": e.child},
        )
        _data(el, "e", {name: getattr(e, name) for name, _ in _EDGE_KEYS})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
        root, encoding="unicode"
    )


def _data(el: ET.Element, scope: str, values: dict[str, object]) -> None:
    for name, value in values.items():
        if value is not None:
            ET.SubElement(
                el, f"{{{GRAPHML_NS}}}data", {"key": f"{scope}_{name}"}
            ).text = str(value)
