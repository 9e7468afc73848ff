"""The lineage graph as SVG on hand-built graphs: both engines, big trees, markup."""

from __future__ import annotations

import os
import re
from xml.etree import ElementTree as ET

import pytest

from modelscan.lineage.graph import Edge, LineageGraph, Node
from modelscan.lineage.subjects import Subject
from modelscan.report import layout
from modelscan.report.graph_svg import drawable, graph_svg, have_graphviz

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"


def family(children: int, *, grandchildren: int = 0) -> LineageGraph:
    """A base with ``children`` fine-tunes, the first few with their own quantized."""
    graph = LineageGraph(Subject("hf:org/base", "repo", "hf:org/base"), ["repo:0"])
    graph.nodes["repo:0"] = Node("repo:0", "hf:org/base", "huggingface", "org/base",
                                 "org", "live")  # fmt: skip
    for i in range(1, children + 1):
        key = f"repo:{i}"
        graph.nodes[key] = Node(key, f"hf:tuner{i}/ft-{i}", "huggingface",
                                f"tuner{i}/ft-{i}", f"tuner{i}", "live")  # fmt: skip
        graph.edges.append(Edge(key, "repo:0", "finetune", "declared-card", None,
                                "hf:org/base"))  # fmt: skip
    for j in range(grandchildren):
        key = f"repo:{children + 1 + j}"
        graph.nodes[key] = Node(key, f"hf:q/q-{j}", status="gone")
        graph.edges.append(Edge(key, f"repo:{1 + j}", "quantized", "weight-similarity",
                                0.93, f"hf:tuner{1 + j}/ft-{1 + j}"))  # fmt: skip
    return graph


def _boxes(svg: str) -> dict[str, tuple[float, float, float, float]]:
    root = ET.fromstring(svg)
    out = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "node":
            rect = g.find(f"{SVG}rect")
            assert rect is not None
            out[g.get("data-key", "")] = tuple(
                float(rect.get(k, "0")) for k in ("x", "y", "width", "height")
            )
    return out


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return (
        a[0] < b[0] + b[2]
        and b[0] < a[0] + a[2]
        and a[1] < b[1] + b[3]
        and (b[1] < a[1] + a[3])
    )


def test_builtin_layout_keeps_a_big_family_readable() -> None:
    """320 descendants: no box overlaps, bounded width, parents above children."""
    graph = family(300, grandchildren=20)
    svg, engine = graph_svg(graph, engine="builtin")
    assert engine == "builtin"
    boxes = _boxes(svg)
    assert len(boxes) == 321
    ordered = list(boxes.values())
    for i, a in enumerate(ordered):
        assert not [b for b in ordered[i + 1 :] if _overlap(a, b)]
    width = float(ET.fromstring(svg).get("width", "0"))
    assert width <= 2 * layout.MARGIN + layout.PER_ROW * (layout.BOX_W + layout.GAP_X)
    for e in graph.edges:
        assert boxes[e.parent][1] < boxes[e.child][1]


def test_layers_survive_a_cycle() -> None:
    """Declared edges can form a cycle: every node still gets a layer."""
    graph = family(2)
    graph.edges.append(Edge("repo:0", "repo:2", "merge", "declared-card", None, "x"))
    nodes, edges = drawable(graph)
    found = layout.layers([n.key for n in nodes], edges)
    assert set(found) == set(graph.nodes)
    assert "<svg" in layout.layered_svg(nodes, edges)


@pytest.mark.parametrize("engine", ["builtin", "graphviz"])
def test_markup_in_labels_stays_text(engine: str) -> None:
    """A repo named <script>alert(1)</script> is a text node in either drawing."""
    if engine == "graphviz" and not have_graphviz():
        if os.environ.get("CI"):
            pytest.fail("Graphviz (dot and the graphviz package) missing in CI")
        pytest.skip("Graphviz not installed")
    graph = family(1)
    graph.nodes["repo:1"] = Node("repo:1", f"hf:{HOSTILE}", owner='"><b>x</b>\\N',
                                 status="live", url="javascript:alert(2)")  # fmt: skip
    svg, used = graph_svg(graph, engine=engine)
    assert used == engine
    root = ET.fromstring(svg)  # well-formed XML
    tags = {el.tag.removeprefix(SVG) for el in root.iter()}
    assert "script" not in tags
    assert "b" not in tags
    texts = "".join(t.strip() for el in root.iter() for t in [el.text or ""])
    assert f"hf:{HOSTILE}" in texts
    assert "javascript:" not in svg


def test_graphviz_draws_every_node() -> None:
    """With dot installed, Graphviz draws a wide family in rows, page-wide."""
    if not have_graphviz():
        if os.environ.get("CI"):
            pytest.fail("Graphviz (dot and the graphviz package) missing in CI")
        pytest.skip("Graphviz not installed")
    graph = family(300, grandchildren=20)
    svg, _ = graph_svg(graph, engine="graphviz")
    root = ET.fromstring(svg)
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert len(nodes) == 321
    width = float(re.sub(r"[a-z]+$", "", root.get("width", "0")))
    assert width < 1200  # staggered rows, not one line of 300 boxes


def test_auto_draws_a_huge_family_with_our_layout() -> None:
    """Above 400 nodes auto takes our layout (Graphviz would take seconds)."""
    svg, engine = graph_svg(family(450), engine="auto")
    assert engine == "builtin"
    assert len(_boxes(svg)) == 451
