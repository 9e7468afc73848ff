"""`modelscan link`, `lineage`, `spread` and `status` through click, on real indexes."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner, Result

from modelscan.cli import cli
from modelscan.db.engine import open_store
from modelscan.lineage.spread import JSON_KEYS
from modelscan.records import Fingerprint

DB_TESTS = Path(__file__).resolve().parents[1] / "db"
sys.path.insert(0, str(DB_TESTS))
import lineage_world as world  # noqa: E402


@pytest.fixture(scope="module")
def fps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Fingerprint]:
    """The world's files, written and fingerprinted once per module."""
    return world.write_files(tmp_path_factory.mktemp("world"))


@pytest.fixture
def indexed(db_url: str, fps: dict[str, Fingerprint]) -> str:
    """An index holding the world (not linked yet); its URL."""
    with open_store(db_url) as store:
        world.build(store, fps)
    return db_url


def run(*args: str) -> Result:
    """Invoke the real command group."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_link_prints_a_summary_and_json(indexed: str) -> None:
    """`link` reports what it wrote; --json gives the same counts."""
    result = run("link", "--db", indexed, "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert {k: counts[k] for k in ("copy", "conversion", "similarity", "claims")} == {
        "copy": 2,
        "conversion": 1,
        "similarity": 2,
        "claims": 1,
    }
    again = run("link", "--db", indexed, "--full")
    assert again.output.startswith("link: ")
    assert "2 copy, 1 conversion, 2 similarity, 1 file claims" in again.output


def test_lineage_tree_on_the_terminal(indexed: str) -> None:
    """Descendants appear as a tree, each with relation, source and confidence."""
    run("link", "--db", indexed)
    out = run("lineage", "hf:org/base", "--db", indexed).output
    lines = out.splitlines()
    assert lines[:5] == [
        "subject: hf:org/base",
        "ancestors:",
        "  (none known)",
        "descendants:",
        "  hf:org/base (org, live)",
    ]
    assert "  ├── civitai:101 (bob, taken_down)  [copy, identical-hash, 1.00]" in lines
    assert (
        "  ├── hf:conv/base-bin (conv, live)  [conversion, same-content, 1.00]" in lines
    )
    assert "  └── hf:q/base-gguf (q, live)  [quantized, declared-card]" in lines
    [ft] = [x for x in lines if "hf:tuner/ft" in x]
    assert "[finetune, declared-card; finetune, weight-similarity, 1.00]" in ft


def test_lineage_formats_for_other_tools(indexed: str) -> None:
    """JSON, DOT and GraphML carry the same edges; networkx reads the GraphML."""
    run("link", "--db", indexed)
    doc = json.loads(
        run("lineage", "hf:org/base", "--db", indexed, "--format", "json").output
    )
    labels = {n["key"]: n["label"] for n in doc["nodes"]}
    edges = {
        (labels[e["parent"]], labels[e["child"]], e["relation"], e["source"])
        for e in doc["edges"]
    }
    assert ("hf:org/base", "hf:mirror/base", "copy", "identical-hash") in edges
    # 2 copies, 1 conversion, tuner/ft declared and measured, liar/ft2 measured,
    # carol's LoRA claim, q/base-gguf declared
    assert len(edges) == len(doc["edges"]) == 8
    dot = run("lineage", "hf:org/base", "--db", indexed, "--format", "dot").output
    assert dot.startswith("digraph lineage {")
    assert dot.rstrip().endswith("}")
    assert dot.count(" -> ") == len(doc["edges"])
    xml = run("lineage", "hf:org/base", "--db", indexed, "--format", "graphml").output
    nx = pytest.importorskip("networkx")
    import io

    graph = nx.read_graphml(io.StringIO(xml))
    got = {
        (graph.nodes[u]["label"], graph.nodes[v]["label"], d["relation"], d["source"])
        for u, v, d in graph.edges(data=True)
    }
    assert got == edges
    ET.fromstring(xml)  # well-formed XML whatever networkx accepts


def test_lineage_check_names_the_contradiction(indexed: str) -> None:
    """--check flags a declared base that the weights contradict, with exit 1."""
    run("link", "--db", indexed)
    result = run("lineage", "hf:liar/ft2", "--check", "--db", indexed)
    assert result.exit_code == 1
    assert result.output.splitlines()[-2:] == [
        "check:",
        "  ! hf:liar/ft2: declared parent hf:other/unrelated but the weights say "
        "hf:org/base (finetune by weight-similarity, r=1.00)",
    ]
    without = run("lineage", "hf:liar/ft2", "--db", indexed)
    assert without.exit_code == 0  # the same contradiction, not asked for


def test_lineage_check_exits_0_without_a_contradiction(indexed: str) -> None:
    """--check on a family whose declared edges agree with the weights exits 0."""
    run("link", "--db", indexed)
    result = run("lineage", "hf:tuner/ft", "--check", "--db", indexed)
    assert result.exit_code == 0, result.output
    assert "check:" not in result.output


def test_lineage_text_counts_files_between_two_repos(
    indexed: str, fps: dict[str, Fingerprint]
) -> None:
    """A repo copying two files of another shows one line: copy (2 files, ...)."""
    files = (
        world.remote(fps["other"], "a.safetensors", "u"),
        world.remote(fps["fresh"], "b.safetensors", "u"),
    )
    with open_store(indexed) as store:
        world.save(store, "huggingface", [world.hf("src/two", files)], world.T0)
        later = world.T0 + 50 * world.DAY
        world.save(store, "huggingface", [world.hf("copy/two", files)], later)
    run("link", "--db", indexed)
    lines = run("lineage", "hf:src/two", "--db", indexed).output.splitlines()
    [line] = [x for x in lines if "hf:copy/two" in x]
    assert line.endswith("[copy (2 files, identical-hash)]")


def test_lineage_of_a_local_file(indexed: str, fps: dict[str, Fingerprint]) -> None:
    """A path is fingerprinted and placed in the family it belongs to."""
    run("link", "--db", indexed)
    out = run("lineage", fps["ft"].path, "--db", indexed).output
    assert "hf:tuner/ft (tuner, live)" in out  # known bytes: the repo holding them
    assert "└── hf:org/base (org, live)  [finetune, declared-card; finetune, " in out


def test_spread_json_table_and_top(indexed: str) -> None:
    """--json keys are the documented measures; the table and --top agree with them."""
    run("link", "--db", indexed)
    data = json.loads(run("spread", "hf:org/base", "--json", "--db", indexed).output)
    assert tuple(data) == JSON_KEYS
    assert (data["takedown_cost"], data["survival"]["survived"]) == (3, 1)
    table = run("spread", "hf:org/base", "--db", indexed).output.splitlines()
    assert table[0] == "spread of hf:org/base"
    assert any(
        x.split() == ["takedown", "cost", "3", "accounts", "hold", "a", "live", "copy"]
        for x in table
    )
    top = json.loads(
        run(
            "spread", "--top", "1", "--by", "takedown-cost", "--json", "--db", indexed
        ).output
    )
    assert [(r["label"], r["takedown_cost"]) for r in top] == [("hf:org/base", 3)]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_spread_plot_writes_a_png(indexed: str, tmp_path: Path) -> None:
    """--plot draws live copies per host into a real 800x450 PNG."""
    out = tmp_path / "spread.png"
    result = run("spread", "hf:org/base", "--plot", str(out), "--db", indexed)
    assert result.exit_code == 0, result.output
    assert png_size(out) == (800, 450)


def test_status_shows_the_last_runs(indexed: str) -> None:
    """One line per host with its last run; --json has the counts; link is reported."""
    out = run("status", "--db", indexed).output.splitlines()
    assert out[0].split() == [
        "host",
        "started",
        "(UTC)",
        "finished",
        "status",
        "new",
        "changed",
        "gone",
        "errors",
    ]
    assert [x.split()[0] for x in out[1:3]] == ["civitai", "huggingface"]
    assert out[-1] == "link: never run (`modelscan link`)"
    run("link", "--db", indexed)
    doc = json.loads(
        run(
            "status", "--db", indexed, "--json", "--host", "civitai", "--runs", "2"
        ).output
    )
    assert [r["host"] for r in doc["runs"]] == ["civitai", "civitai"]
    assert all(r["status"] == "ok" for r in doc["runs"])
    assert doc["link"]["copy"] == 2


def test_errors_are_one_line(indexed: str) -> None:
    """A hash the index lacks is exit 1 with one line; a bad call is exit 2."""
    result = run("spread", "0" * 64, "--db", indexed)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"modelscan: error: {'0' * 64}: no file with this hash in the index; crawl or "
        "`modelscan fingerprint --save` it first"
    ]
    assert run("spread", "--db", indexed).exit_code == 2
    assert run("lineage", "not a hash!", "--db", indexed).exit_code == 1
