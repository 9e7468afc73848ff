"""``crawl --host civitai --by-hash`` via the real CLI: an HF file found on Civitai."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from crosshosts import DREAMSHAPER, write_world
from indexrows import query
from replay import ReplayServer

from modelscan.cli import cli


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """The recorded Civitai page and a Hub repo re-uploading DreamShaper 8."""
    return write_world(tmp_path / "world")


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", db])


def posts(server: ReplayServer) -> list[list[str]]:
    return [json.loads(r.body) for r in server.requests if r.method == "POST"]


def test_an_hf_file_is_found_on_civitai_by_its_hash(
    env: dict[str, str], server: ReplayServer, tmp_path: Path
) -> None:
    """One POST asks every HF sha256; the model holding one is saved whole."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    assert run(db, "crawl", "--host", "huggingface").exit_code == 0
    server.reset()
    result = run(db, "crawl", "--host", "civitai", "--by-hash", "--json")
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.output)["hosts"]
    assert (summary["new"], summary["requests"]) == (1, 2)  # POST + the model
    (asked,) = posts(server)
    assert DREAMSHAPER.upper() in asked
    assert len(asked) == 3  # the three Hub files with an sha256
    where = run(db, "where", DREAMSHAPER, "--json")
    hosts = {json.loads(line)["host"] for line in where.output.splitlines() if line}
    assert hosts == {"huggingface", "civitai"}
    spread = json.loads(run(db, "spread", DREAMSHAPER, "--json").output)
    assert (spread["hosts"], spread["takedown_cost"]) == (2, 2)
    versions = query(db, "SELECT count(*) FROM versions v JOIN repos r ON "
                         "r.id = v.repo_id WHERE r.host = 'civitai'")  # fmt: skip
    assert versions == [(3,)]  # every version of the model, not just the one found


def test_hashes_asked_are_not_asked_again_until_full(
    env: dict[str, str], server: ReplayServer, tmp_path: Path
) -> None:
    """A second run asks nothing (no request); --full asks the unfound ones again."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    run(db, "crawl", "--host", "huggingface")
    run(db, "crawl", "--host", "civitai", "--by-hash")
    server.reset()
    again = json.loads(run(db, "crawl", "--host", "civitai", "--by-hash",
                           "--json").output)  # fmt: skip
    assert again["hosts"][0]["requests"] == 0
    assert posts(server) == []
    full = run(db, "crawl", "--host", "civitai", "--by-hash", "--full")
    assert full.exit_code == 0
    (asked,) = posts(server)
    assert len(asked) == 2  # DreamShaper is on Civitai now: not asked again
    assert DREAMSHAPER.upper() not in asked


def test_by_hash_refuses_other_hosts_and_limit(
    env: dict[str, str], tmp_path: Path
) -> None:
    """--by-hash goes with --host civitai and --max-pages, not --limit (exit 2)."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    other = run(db, "crawl", "--host", "huggingface", "--by-hash")
    assert other.exit_code == 2
    assert "--host civitai" in other.output
    limited = run(db, "crawl", "--host", "civitai", "--by-hash", "--limit", "5")
    assert limited.exit_code == 2
    assert "--max-pages" in limited.output
