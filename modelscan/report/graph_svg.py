"""The report's lineage graph as inline SVG: Graphviz when present, else our layout.

The graph is drawn parent above child (the way weights travel). Several edges
between the same two repos (one per file) become one line labelled by
``lineage_render.edges_text``; declared edges are solid, inferred ones dashed,
and each relation has its colour. With the ``dot`` binary and the ``graphviz``
package, Graphviz lays the graph out (a wide fan-out staggered in rows);
otherwise :mod:`modelscan.report.layout` draws layered rows of our own.

Every label is escaped for DOT (``graphviz.escape``: no HTML-like labels, no
backslash sequences) and for XML (Graphviz writes it; our layout escapes it).

Example:
    >>> svg, engine = graph_svg(graph)  # doctest: +SKIP
    >>> engine  # doctest: +SKIP
    'graphviz'
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import shutil
from collections import Counter
from dataclasses import dataclass
from typing import Any

from modelscan.lineage.graph import Edge, LineageGraph
from modelscan.lineage_render import edges_text
from modelscan.report.chart import unique_ids
from modelscan.report.data import safe_url

ENGINES = ("auto", "graphviz", "builtin")
RELATION_COLOURS = {
    "copy": "#555555",
    "conversion": "#1f77b4",
    "finetune": "#2ca02c",
    "adapter": "#9467bd",
    "quantized": "#ff7f0e",
    "merge": "#d62728",
}
OTHER_COLOUR = "#8c564b"
CONTRADICTED = "#c2185b"  # a declared edge the weights contradict
STATUS_FILLS = {"live": "#e6f4ea", "gated": "#fff4d6"}
GONE_FILL = "#fbe3e3"
UNKNOWN_FILL = "#ffffff"
WIDE_FANOUT = 8  # children of one node: beyond this Graphviz staggers them in rows
AUTO_GRAPHVIZ_UP_TO = 400  # nodes; 600 take dot 15 s, our layout 0.1 s
WRAP_AT = 24  # characters: a longer node title takes two lines in Graphviz
GRAPHVIZ_PER_ROW = 5  # staggered leaves side by side (about a page's width)
EDGE_LABELS_UP_TO = 40  # drawn edges: beyond this labels are tooltips only


@dataclass(frozen=True, slots=True)
class DrawNode:
    """A node as drawn: two lines of text, a fill, a link."""

    key: str
    title: str  # first line: the reference or hash
    detail: str  # second line: owner, status, or "not in the index"
    fill: str
    root: bool
    missing: bool  # a reference or blob the index holds no repo for
    url: str | None


@dataclass(frozen=True, slots=True)
class DrawEdge:
    """All edges between one parent and one child, drawn as one line."""

    parent: str
    child: str
    text: str
    colour: str
    declared: bool
    contradicted: bool = False  # ``lineage --check`` says the weights disagree


def relation_colour(relation: str) -> str:
    """The colour a relation is drawn in."""
    return RELATION_COLOURS.get(relation, OTHER_COLOUR)


def drawable(graph: LineageGraph) -> tuple[list[DrawNode], list[DrawEdge]]:
    """Return the nodes and merged edges of ``graph`` to draw."""
    keys = list(graph.nodes)
    for e in graph.edges:
        keys += [k for k in (e.parent, e.child) if k not in graph.nodes]
    nodes = [_node(graph, k) for k in dict.fromkeys(keys)]
    groups: dict[tuple[str, str], list[Edge]] = {}
    for e in graph.edges:
        groups.setdefault((e.parent, e.child), []).append(e)
    wrong = {(c.declared_parent, c.child) for c in graph.contradictions}
    edges = [
        DrawEdge(
            parent,
            child,
            ("contradicted: " if (parent, child) in wrong else "") + edges_text(same),
            CONTRADICTED
            if (parent, child) in wrong
            else relation_colour(same[0].relation),
            any(e.declared for e in same),
            (parent, child) in wrong,
        )
        for (parent, child), same in groups.items()
    ]
    return nodes, edges


def _node(graph: LineageGraph, key: str) -> DrawNode:
    n = graph.nodes.get(key)
    missing = not key.startswith(("repo:", "file:"))
    if n is None:
        return DrawNode(key, key, "", UNKNOWN_FILL, False, True, None)
    facts = [x for x in (n.owner, n.status) if x]
    if missing:
        facts.append("not in the index")
    fill = UNKNOWN_FILL if missing else STATUS_FILLS.get(n.status or "", GONE_FILL)
    if key.startswith("file:"):
        fill = STATUS_FILLS["live"]
    url = safe_url(n.url)
    return DrawNode(
        key,
        n.label,
        ", ".join(facts),
        fill,
        key in graph.roots,
        missing,
        url if url and "\\" not in url else None,
    )


def wrap_title(title: str, width: int = WRAP_AT) -> str:
    r"""Break a long reference after its owner (``hf:org/`` then ``name``).

    >>> wrap_title("hf:sentence-transformers/all-MiniLM-L6-v2")
    'hf:sentence-transformers/\nall-MiniLM-L6-v2'
    """
    head, sep, tail = title.partition("/")
    if len(title) <= width or not sep or not tail:
        return title
    return f"{head}{sep}\n{tail}"


def have_graphviz() -> bool:
    """Tell whether Graphviz can draw: the ``dot`` binary and the Python package."""
    if shutil.which("dot") is None:
        return False
    return importlib.util.find_spec("graphviz") is not None


def graph_svg(graph: LineageGraph, *, engine: str = "auto") -> tuple[str, str]:
    """Return the graph as an ``<svg>`` element and the engine that drew it.

    Args:
        graph: the lineage graph.
        engine: ``graphviz``, ``builtin`` or ``auto`` (Graphviz when present,
            up to :data:`AUTO_GRAPHVIZ_UP_TO` nodes).

    Raises:
        ValueError: ``engine`` is ``graphviz`` and Graphviz is not installed.
    """
    from modelscan.report import layout

    nodes, edges = drawable(graph)
    use = engine
    if engine == "auto":
        small = len(nodes) <= AUTO_GRAPHVIZ_UP_TO
        use = "graphviz" if small and have_graphviz() else "builtin"
    if use == "graphviz":
        if not have_graphviz():
            raise ValueError("graphviz: install the dot binary and the package")
        return _graphviz_svg(nodes, edges), "graphviz"
    return layout.layered_svg(nodes, edges), "builtin"


def _graphviz_svg(nodes: list[DrawNode], edges: list[DrawEdge]) -> str:
    graphviz: Any = importlib.import_module("graphviz")  # optional, untyped

    ids = {n.key: f"n{i}" for i, n in enumerate(nodes)}
    labelled = len(edges) <= EDGE_LABELS_UP_TO
    # Unlabelled edges sharing a trunk (concentrate) keep the staggered leaves
    # of a wide fan-out (unflatten, below) within a page's width.
    attrs = {"rankdir": "TB", "bgcolor": "none", "nodesep": "0.25"}
    dot = graphviz.Digraph("lineage", graph_attr=attrs)
    if not labelled:
        dot.attr(concentrate="true")
    dot.attr("node", shape="box", style="rounded,filled", fontname="Helvetica")
    dot.attr("node", fontsize="10", margin="0.12,0.06")
    dot.attr("edge", fontname="Helvetica", fontsize="9", arrowsize="0.6")
    for n in nodes:
        text = wrap_title(n.title) + (f"\n{n.detail}" if n.detail else "")
        attrs = {
            "fillcolor": n.fill,
            "penwidth": "2.5" if n.root else "1",
            "style": "rounded,filled,dashed" if n.missing else "rounded,filled",
            "tooltip": graphviz.escape(text),
        }
        if n.url:
            attrs["URL"] = graphviz.escape(n.url)
        dot.node(ids[n.key], graphviz.escape(text), **attrs)
    for e in edges:
        attrs = {
            "color": e.colour,
            "fontcolor": e.colour,
            "style": "solid" if e.declared else "dashed",
            "penwidth": "2.5" if e.contradicted else "1",
            "tooltip": graphviz.escape(e.text),
        }
        if labelled:
            attrs["label"] = graphviz.escape(e.text.replace(", ", "\n", 1))
        dot.edge(ids[e.parent], ids[e.child], **attrs)
    fanout = max(Counter(e.parent for e in edges).values(), default=0)
    source = dot
    if fanout > WIDE_FANOUT:  # a base with hundreds of fine-tunes: rows of leaves
        stagger = math.ceil(fanout / GRAPHVIZ_PER_ROW)
        source = dot.unflatten(stagger=stagger, fanout=True, chain=4)

    svg = source.pipe(format="svg", encoding="utf-8")
    body = unique_ids(svg[svg.index("<svg") :], "g-")
    return body.replace("<svg ", '<svg class="graph" role="img" ', 1)
