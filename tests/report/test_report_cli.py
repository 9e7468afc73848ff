"""``modelscan report`` on a crawled index (SQLite and PostgreSQL): the page's facts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from htmlscan import expected_measures, scan, unsafe
from report_world import HOSTILE, HOSTILE_AUTHOR, HOSTILE_BASE, HOSTILE_FILE, run

from modelscan.cli import cli
from modelscan.report.graph_svg import have_graphviz


def test_headline_numbers_are_spread_json(indexed: str, tmp_path: Path) -> None:
    """Every headline number on the page is the value `spread --json` prints."""
    out = tmp_path / "report.html"
    made = json.loads(run("report", "hf:org/base", "-o", str(out), "--json",
                          "--db", indexed))  # fmt: skip
    assert made["path"] == str(out)
    assert made["bytes"] == out.stat().st_size
    page = scan(out.read_text())
    spread = json.loads(run("spread", "hf:org/base", "--json", "--db", indexed))
    assert page.measures == expected_measures(spread)
    assert page.measures["exact_copies"] == 5  # 4 Hub repos and one Civitai model
    assert page.measures["derivatives.finetune"] == 2
    assert made["copies"] == 5


def test_descendants_numbers_are_spread_json(indexed: str, tmp_path: Path) -> None:
    """With --descendants the page shows `spread --descendants --json`'s numbers."""
    out = tmp_path / "family.html"
    args = ("hf:org/base", "--descendants", "--db", indexed)
    run("report", *args, "-o", str(out))
    page = scan(out.read_text())
    spread = json.loads(run("spread", *args, "--json"))
    assert page.measures == expected_measures(spread)
    assert "Spread of hf:org/base and its descendants" in "".join(page.text)


def test_hostile_names_stay_text(indexed: str, tmp_path: Path) -> None:
    """A repo named <script>alert(1)</script>, hostile owners, paths, cards: text."""
    shown = {  # subject -> what its page must show as text
        "hf:org/base": (f"hf:{HOSTILE}", HOSTILE_AUTHOR, HOSTILE_FILE),
        "hf:evil/copy": (HOSTILE_BASE, HOSTILE_AUTHOR),  # its declared base
    }
    for subject, values in shown.items():
        out = tmp_path / "report.html"
        run("report", subject, "-o", str(out), "--db", indexed)
        html = out.read_text()
        page = scan(html)
        assert unsafe(page) == []
        text = "".join(page.text)
        assert [v for v in values if v not in text] == []
        assert "<script" not in html
        assert "javascript:" not in html  # the listed URL is no link


def test_page_sections(indexed: str, tmp_path: Path) -> None:
    """Chart, graph, copies with links, contradictions, method; nothing fetched."""
    out = tmp_path / "report.html"
    run("report", "hf:org/base", "-o", str(out), "--db", indexed)
    html = out.read_text()
    page = scan(html)
    ids = page.attrs("id")
    for section in ("numbers", "growth", "lineage", "copies", "contradictions",
                    "method"):  # fmt: skip
        assert section in ids
    assert page.count("svg") >= 2
    assert [c for c in page.attrs("data-contradiction")] == ["low-correlation"]
    assert "hf:liar/ft" in "".join(page.text)
    links = [a["href"] for t, a in page.tags if t == "a" and "href" in a]
    # each copy links to its repo as listed (here the replayed hosts' URLs)
    for repo in ("/huggingface/mirror/base", "/civitai/models/7001"):
        assert [u for u in links if u.endswith(repo)], links
    assert '<link rel="stylesheet"' not in html
    assert "@import" not in html
    assert not re.search(r"url\((?!#)", html)  # only the SVG's own clip paths


@pytest.mark.parametrize("layout", ["builtin", "graphviz"])
def test_both_graph_layouts(indexed: str, tmp_path: Path, layout: str) -> None:
    """The lineage graph is drawn by Graphviz or by our layout, as asked."""
    if layout == "graphviz" and not have_graphviz():
        pytest.skip("Graphviz (dot) not installed")
    out = tmp_path / "report.html"
    run("report", "hf:org/base", "-o", str(out), "--layout", layout, "--db", indexed)
    page = scan(out.read_text())
    assert page.attrs("data-engine") == [layout]
    assert "hf:tuner/ft" in "".join(page.text)
    # the declared fine-tune the weights contradict is marked on its edge
    tips = "".join(page.text) + "".join(page.attrs("xlink:title"))  # tooltips
    assert "contradicted: finetune, declared-card" in tips


def test_top_index_page(indexed: str, tmp_path: Path) -> None:
    """--top N writes the ranking and one section per family with its numbers."""
    out = tmp_path / "index.html"
    made = json.loads(run("report", "--top", "3", "-o", str(out), "--json",
                          "--db", indexed))  # fmt: skip
    page = scan(out.read_text())
    top = json.loads(run("spread", "--top", "3", "--json", "--db", indexed))
    assert made["families"] == len(top) == len(page.attrs("data-family"))
    assert page.attrs("data-family") == [t["family"] for t in top]
    assert unsafe(page) == []
    assert len(set(page.attrs("id"))) == len(page.attrs("id"))  # ids unique


def test_errors_are_one_line(indexed: str, tmp_path: Path) -> None:
    """No subject, an unknown hash, or an unwritable file: one line, no traceback."""
    runner = CliRunner()
    none = runner.invoke(cli, ["report", "--db", indexed])
    assert none.exit_code == 2
    assert "give a SUBJECT or --top N" in none.output
    unknown = runner.invoke(cli, ["report", "0" * 64, "--db", indexed,
                                  "-o", str(tmp_path / "x.html")])  # fmt: skip
    assert unknown.exit_code == 1
    assert unknown.output.startswith("modelscan: error: ")
    assert "Traceback" not in unknown.output
    blocked = runner.invoke(cli, ["report", "hf:org/base", "--db", indexed,
                                  "-o", str(tmp_path / "no" / "dir.html")])  # fmt: skip
    assert blocked.exit_code == 1
    assert blocked.output.startswith("Error: ")
    assert "Traceback" not in blocked.output
