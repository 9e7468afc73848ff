"""``crawl --host modelscope`` via the real CLI: a Hub safetensors found in China."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from crosshosts import MINILM_SHA, write_world
from indexrows import query
from replay import ReplayServer

from modelscan.cli import cli

MINILM = "AI-ModelScope/all-MiniLM-L6-v2"


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """The recorded-shape ModelScope pages and the Hub's all-MiniLM-L6-v2."""
    return write_world(tmp_path / "world")


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", db])


def test_the_same_safetensors_on_hugging_face_and_modelscope(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`where` lists both; `spread` counts both hosts and jurisdictions."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    assert run(db, "crawl", "--host", "huggingface").exit_code == 0
    crawled = run(db, "crawl", "--host", "modelscope", "--json")
    assert crawled.exit_code == 0, crawled.output
    where = run(db, "where", MINILM_SHA, "--json")
    found = [json.loads(line) for line in where.output.splitlines() if line]
    assert {(r["host"], r["repo"]) for r in found} == {
        ("huggingface", "sentence-transformers/all-MiniLM-L6-v2"),
        ("modelscope", MINILM),
    }
    spread = json.loads(run(db, "spread", MINILM_SHA, "--json").output)
    assert (spread["exact_copies"], spread["hosts"]) == (2, 2)
    assert set(spread["first_seen_per_host"]) == {"huggingface", "modelscope"}
    mirror = query(db, "SELECT parent_ref, relation FROM lineage WHERE parent_ref "
                       "LIKE 'hf:%'")  # fmt: skip
    assert mirror == [("hf:sentence-transformers/all-MiniLM-L6-v2", "copy")]


def test_a_recrawl_marks_the_deleted_model_and_lists_only_the_changed(
    env: dict[str, str], server: ReplayServer, tmp_path: Path
) -> None:
    """Second visit: one changed model's files are read again, the deleted one gone."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    assert run(db, "crawl", "--host", "modelscope").exit_code == 0
    server.visit = 1
    server.reset()
    again = json.loads(run(db, "crawl", "--host", "modelscope", "--json").output)
    (summary,) = again["hosts"]
    assert (summary["changed"], summary["unchanged"], summary["gone"]) == (1, 1, 1)
    assert summary["requests"] == 4  # the list, Qwen's files and card, damo's check
    assert server.count(f"{MINILM}/repo") == 0
    status = dict(query(db, "SELECT host_id, status FROM repos WHERE host = "
                            "'modelscope'"))  # fmt: skip
    assert status["damo/nlp_structbert_backbone_base_std"] == "gone"


def test_a_host_down_fails_with_a_one_line_error(
    env: dict[str, str], server: ReplayServer, tmp_path: Path
) -> None:
    """503 on every try: exit 1, one line naming the host, no traceback."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    server.fail("/modelscope/", 503, times=None, headers={"Retry-After": "0"})
    result = run(db, "crawl", "--host", "modelscope")
    assert result.exit_code == 1
    assert "modelscope: failed" in result.output
    assert "Traceback" not in result.output
