"""``crawl --host ollama``: tags by name through the real CLI; the GGUF on HF too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from crosshosts import GEMMA_GGUF, write_world
from indexrows import query
from replay import ReplayServer

from modelscan.cli import cli


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """The recorded Ollama manifests and a Hub repo holding gemma:2b's GGUF."""
    return write_world(tmp_path / "world")


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", db])


def test_the_same_gguf_on_hugging_face_and_ollama_is_one_blob(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`where` lists both copies; `spread` counts two hosts and two owners."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    assert run(db, "crawl", "--host", "huggingface").exit_code == 0
    crawled = run(db, "crawl", "--host", "ollama", "--model", "gemma:2b", "--json")
    assert crawled.exit_code == 0, crawled.output
    (summary,) = json.loads(crawled.output)["hosts"]
    assert (summary["new"], summary["files"], summary["requests"]) == (1, 1, 1)
    where = run(db, "where", GEMMA_GGUF, "--json")
    hosts = {json.loads(line)["host"] for line in where.output.splitlines() if line}
    assert hosts == {"huggingface", "ollama"}
    spread = json.loads(run(db, "spread", GEMMA_GGUF, "--json").output)
    assert (spread["exact_copies"], spread["hosts"], spread["owners"]) == (2, 2, 2)
    assert set(spread["first_seen_per_host"]) == {"huggingface", "ollama"}


def test_a_recrawl_reads_the_known_tags_and_records_change_and_gone(
    env: dict[str, str], server: ReplayServer, tmp_path: Path
) -> None:
    """No --model on the second run: the index's tags are read; one moved, one gone."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    names = tmp_path / "tags.txt"
    names.write_text("# tags to watch\ngemma:2b\nqwen2.5:0.5b-instruct-q8_0\n")
    assert (
        run(db, "crawl", "--host", "ollama", "--models-from", str(names)).exit_code == 0
    )
    server.visit = 1
    again = run(db, "crawl", "--host", "ollama", "--json")
    (summary,) = json.loads(again.output)["hosts"]
    assert (summary["changed"], summary["gone"], summary["requests"]) == (1, 1, 2)
    rows = dict(query(db, "SELECT host_id, status FROM repos WHERE host = 'ollama'"))
    assert rows == {"library/gemma:2b": "live",
                    "library/qwen2.5:0.5b-instruct-q8_0": "gone"}  # fmt: skip
    old = query(db, f"SELECT status FROM files WHERE sha256 = '{GEMMA_GGUF}'")
    assert old == [("gone",)]


def test_a_bad_name_is_a_usage_error_before_any_request(
    env: dict[str, str], server: ReplayServer, tmp_path: Path
) -> None:
    """--model Bad/Name/x: exit 2 naming the option; nothing was asked."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = run(db, "crawl", "--host", "ollama", "--model", "Bad/Name/x")
    assert result.exit_code == 2
    assert "--model" in result.output
    assert "Traceback" not in result.output
    assert server.requests == []
    other = run(db, "crawl", "--host", "civitai", "--model", "gemma:2b")
    assert other.exit_code == 2
    assert "--host ollama" in other.output


def test_status_shows_the_ollama_run(env: dict[str, str], tmp_path: Path) -> None:
    """`modelscan status` lists the new host's runs like any other host's."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    run(db, "crawl", "--host", "ollama", "--model", "gemma:2b")
    status = json.loads(run(db, "status", "--json").output)
    assert [r["host"] for r in status["runs"]] == ["ollama"]


def test_an_ollama_tag_a_modelscope_card_links_is_read_without_naming_it(
    env: dict[str, str], server: ReplayServer, tmp_path: Path
) -> None:
    """The Qwen card links its Ollama tag: `crawl --host ollama` alone reads it."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    assert run(db, "crawl", "--host", "modelscope").exit_code == 0
    server.reset()
    crawled = json.loads(run(db, "crawl", "--host", "ollama", "--json").output)
    assert crawled["hosts"][0]["new"] == 1
    assert server.count("/ollama/v2/library/qwen2.5/manifests/0.5b-instruct-q8_0") == 1
    where = run(
        db, "where", "ca59ca7f13d0e15a8cfa77bd17e65d24f6844b554a7b6c12e07a5f89ff76844e"
    )
    assert "modelscope:" in where.output
    assert "ollama:" in where.output
