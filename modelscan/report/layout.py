"""A layered drawing of a lineage graph in SVG, for machines without Graphviz.

Nodes sit in layers by their longest path from a node without parents (a
parent is always above its children; a cycle, which declared edges can make, is
broken where it closes). Within a layer nodes are ordered by the mean position
of their parents (two sweeps), and a wide layer wraps into rows of at most
:data:`PER_ROW` boxes, so a base with three hundred fine-tunes stays a page
wide and every box keeps a readable size. Edges are curves from the parent's
bottom to the child's top, coloured by relation, dashed when inferred; their
text is a tooltip (and a label while the graph is small).

Example:
    >>> svg = layered_svg(nodes, edges)  # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from html import escape

from modelscan.report.graph_svg import (
    CONTRADICTED,
    EDGE_LABELS_UP_TO,
    RELATION_COLOURS,
    DrawEdge,
    DrawNode,
)

PER_ROW = 6
BOX_W, BOX_H = 190, 40
GAP_X, ROW_GAP, LAYER_GAP = 18, 34, 70
MARGIN = 16
TEXT_CHARS = 30  # characters of a line shown in a box; the tooltip has all


def layers(keys: Sequence[str], edges: Sequence[DrawEdge]) -> dict[str, int]:
    """Return each node's layer: its longest path from a node without parents."""
    children: dict[str, list[str]] = defaultdict(list)
    parents: dict[str, int] = dict.fromkeys(keys, 0)
    for e in edges:
        if e.parent != e.child:
            children[e.parent].append(e.child)
            parents[e.child] = parents.get(e.child, 0) + 1
    layer = dict.fromkeys(parents, 0)
    todo = deque(k for k, n in parents.items() if n == 0)
    left = dict(parents)
    while len(todo) or any(left.values()):
        if not todo:  # a cycle: start from its first node still waiting
            stuck = next(k for k, n in left.items() if n)
            left[stuck] = 0
            todo.append(stuck)
        key = todo.popleft()
        for child in children[key]:
            if left[child] == 0:
                continue  # reached again through a cycle
            layer[child] = max(layer[child], layer[key] + 1)
            left[child] -= 1
            if left[child] == 0:
                todo.append(child)
    return layer


def _ordered(layer: dict[str, int], edges: Sequence[DrawEdge]) -> list[list[str]]:
    """Nodes per layer, each layer sorted by the mean position of its parents."""
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for key, n in layer.items():
        rows[n].append(key)
    ups: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        ups[e.child].append(e.parent)
    for _ in range(2):
        for i in range(1, len(rows)):
            pos = {k: j for j, k in enumerate(rows[i - 1])}
            rows[i].sort(key=lambda k: _mean([pos[p] for p in ups[k] if p in pos]))
    return rows


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else float("inf")


def positions(
    layer: dict[str, int], edges: Sequence[DrawEdge]
) -> tuple[dict[str, tuple[int, int]], int, int]:
    """Return each box's top-left corner, and the drawing's width and height."""
    width = MARGIN * 2 + PER_ROW * BOX_W + (PER_ROW - 1) * GAP_X
    at: dict[str, tuple[int, int]] = {}
    y = MARGIN
    for row in _ordered(layer, edges):
        for start in range(0, len(row), PER_ROW):
            chunk = row[start : start + PER_ROW]
            used = len(chunk) * BOX_W + (len(chunk) - 1) * GAP_X
            x = (width - used) // 2
            for key in chunk:
                at[key] = (x, y)
                x += BOX_W + GAP_X
            y += BOX_H + ROW_GAP
        y += LAYER_GAP - ROW_GAP
    height = y - LAYER_GAP + ROW_GAP + MARGIN
    return at, width, max(height, BOX_H + 2 * MARGIN)


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _box(n: DrawNode, x: int, y: int) -> str:
    full = escape(n.title + (f" ({n.detail})" if n.detail else ""))
    dash = ' stroke-dasharray="4 3"' if n.missing else ""
    width = 2.5 if n.root else 1
    parts = [
        f'<g class="node" data-key="{escape(n.key)}"><title>{full}</title>',
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" '
        f'fill="{n.fill}" stroke="#333" stroke-width="{width}"{dash}/>',
        f'<text x="{x + BOX_W // 2}" y="{y + 16}" text-anchor="middle" '
        f'font-size="11" font-weight="bold">{escape(_clip(n.title))}</text>',
        f'<text x="{x + BOX_W // 2}" y="{y + 31}" text-anchor="middle" '
        f'font-size="10" fill="#444">{escape(_clip(n.detail))}</text></g>',
    ]
    body = "".join(parts)
    if n.url:
        return f'<a href="{escape(n.url)}">{body}</a>'
    return body


def _curve(e: DrawEdge, at: dict[str, tuple[int, int]], labelled: bool) -> str:
    (px, py), (cx, cy) = at[e.parent], at[e.child]
    x1, y1 = px + BOX_W // 2, py + BOX_H
    x2, y2 = cx + BOX_W // 2, cy
    if y2 <= y1:  # a child drawn above its parent (a broken cycle): go round
        y2 = cy + BOX_H
    mid = (y1 + y2) // 2
    dash = "" if e.declared else ' stroke-dasharray="5 4"'
    text = escape(e.text)
    out = (
        f'<g class="edge"><title>{text}</title>'
        f'<path d="M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2 - 6}" fill="none" '
        f'stroke="{e.colour}" stroke-width="{2.6 if e.contradicted else 1.4}"{dash}/>'
        f'<path d="M{x2 - 4},{y2 - 7} L{x2},{y2} L{x2 + 4},{y2 - 7} z" '
        f'fill="{e.colour}"/>'
    )
    if labelled:  # just above the child's box, where no other edge ends
        out += (
            f'<text x="{x2}" y="{y2 - 10}" font-size="9" text-anchor="middle" '
            f'fill="{e.colour}" stroke="#fff" stroke-width="3" '
            f'paint-order="stroke">{escape(_clip(e.text))}</text>'
        )
    return out + "</g>"


def _legend(y: int) -> str:
    items = []
    x = MARGIN
    for relation, colour in [*RELATION_COLOURS.items(), ("contradicted", CONTRADICTED)]:
        items.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 18}" y2="{y}" stroke="{colour}" '
            f'stroke-width="2"/><text x="{x + 22}" y="{y + 4}" font-size="10">'
            f"{relation}</text>"
        )
        x += 100
    return "".join(items)


def layered_svg(nodes: Sequence[DrawNode], edges: Sequence[DrawEdge]) -> str:
    """Return an ``<svg>`` element drawing the nodes in layered rows."""
    layer = layers([n.key for n in nodes], edges)
    at, width, height = positions(layer, edges)
    labelled = len(edges) <= EDGE_LABELS_UP_TO
    legend_h = 24
    body = [_curve(e, at, labelled) for e in edges if e.parent != e.child]
    body += [_box(n, *at[n.key]) for n in nodes]
    total = height + legend_h
    return (
        f'<svg class="graph" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{total}" viewBox="0 0 {width} {total}" '
        f'font-family="Helvetica, Arial, sans-serif">'
        + "".join(body)
        + _legend(height + 8)
        + "</svg>"
    )
