"""``modelscan crawl``: CliRunner against the replay server and real SQLite files.

Also the kill-and-resume proof: the command in a subprocess, SIGKILLed at random
points, restarted, ends with the same index as an uninterrupted crawl.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from indexrows import query
from replay import ReplayServer

from modelscan.cli import cli
from modelscan.cli.crawl_cmd import HOST_NAMES

TOKEN = "r8_cli-test-token"


def test_host_names_match_the_registry() -> None:
    """The CLI's choices (kept import-free) are exactly the registry's hosts."""
    from modelscan.registry import HOSTS

    assert set(HOST_NAMES) == set(HOSTS)


def test_json_summary_and_index(env: dict[str, str], tmp_path: Path) -> None:
    """--json prints the run's counters; the index holds what was crawled."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = CliRunner().invoke(
        cli, ["crawl", "--host", "civitai", "--db", db, "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["ok"] is True
    (civitai,) = summary["hosts"]
    assert civitai["status"] == "ok" and civitai["complete"] is True  # noqa: PT018
    repos = query(db, "SELECT count(*) FROM repos WHERE host = 'civitai'")[0][0]
    assert civitai["new"] == repos == 6
    assert civitai["requests"] == 3


def test_one_line_summary_without_json(env: dict[str, str], tmp_path: Path) -> None:
    """Without --json the command prints one summary line per host."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = CliRunner().invoke(cli, ["crawl", "--host", "huggingface", "--db", db,
                                      "--author", "mcpotato"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("huggingface: ok, 1 listings (1 new")


def test_all_without_replicate_token_crawls_the_others(
    env: dict[str, str], tmp_path: Path
) -> None:
    """--host all: Replicate is skipped with a message naming its token; exit 0."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = CliRunner().invoke(cli, ["crawl", "--host", "all", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    status = {h["host"]: h["status"] for h in out["hosts"]}
    assert status == {"huggingface": "ok", "civitai": "ok", "replicate": "skipped",
                      "ollama": "ok", "modelscope": "ok"}  # fmt: skip
    assert "REPLICATE_API_TOKEN" in result.stderr
    hosts = {h for (h,) in query(db, "SELECT DISTINCT host FROM repos")}
    # Ollama runs last: it reads the tag ModelScope's Qwen card links
    assert hosts == {"huggingface", "civitai", "modelscope", "ollama"}


def test_replicate_alone_without_token_is_a_one_line_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    """--host replicate without a token: exit 1 and what to set."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = CliRunner().invoke(cli, ["crawl", "--host", "replicate", "--db", db])
    assert result.exit_code == 1
    assert "set REPLICATE_API_TOKEN" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_failed_host_exits_1_and_keeps_the_others(
    env: dict[str, str],
    server: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host answering nonsense fails (exit 1) without stopping the next host."""
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    server.fail(r"/civitai/api/v1/models\?", 404, times=None)
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = CliRunner().invoke(cli, ["crawl", "--host", "all", "--db", db, "--json"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    status = {h["host"]: h["status"] for h in out["hosts"]}
    assert status == {"huggingface": "ok", "civitai": "failed", "replicate": "ok",
                      "ollama": "ok", "modelscope": "ok"}  # fmt: skip
    assert TOKEN not in result.output
    failed = next(h for h in out["hosts"] if h["host"] == "civitai")
    assert "HTTP 404" in failed["error"]


def test_usage_errors(env: dict[str, str], tmp_path: Path) -> None:
    """--endpoint needs one host; Replicate has no filters: both exit 2."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    one = CliRunner().invoke(cli, ["crawl", "--host", "all", "--endpoint", "http://x",
                                   "--db", db])  # fmt: skip
    assert one.exit_code == 2 and "--endpoint" in one.output  # noqa: PT018
    os.environ["REPLICATE_API_TOKEN"] = TOKEN
    try:
        two = CliRunner().invoke(cli, ["crawl", "--host", "replicate", "--author", "a",
                                       "--db", db])  # fmt: skip
    finally:
        del os.environ["REPLICATE_API_TOKEN"]
    assert two.exit_code == 2 and "--author" in two.output  # noqa: PT018


def test_endpoint_option_points_at_a_mirror(
    env: dict[str, str],
    server: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--endpoint wins over the environment variable."""
    monkeypatch.setenv("MODELSCAN_CIVITAI_URL", "http://127.0.0.1:9/nowhere")
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = CliRunner().invoke(cli, ["crawl", "--host", "civitai", "--db", db,
                                      "--endpoint", server.base("civitai"),
                                      "--max-pages", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert server.count("/civitai/") == 1


def test_help_has_an_example() -> None:
    """The help text keeps the Example block's lines as written."""
    result = CliRunner().invoke(cli, ["crawl", "--help"])
    assert "Example:\n      modelscan crawl --host huggingface" in result.output


# --- kill and resume ------------------------------------------------------------------

# What the index must agree on after any sequence of kills (timestamps excluded).
SNAPSHOT = {
    "repos": "SELECT host, host_id, name, owner, revision, status, downloads "
             "FROM repos",
    "versions": "SELECT r.host_id, v.revision FROM versions v JOIN repos r "
                "ON r.id = v.repo_id",
    "files": "SELECT r.host_id, f.path, f.size, f.sha256, f.status FROM files f "
             "JOIN repos r ON r.id = f.repo_id",
    "blobs": "SELECT sha256, autov1, autov2, autov3, blake3, crc32 FROM blobs",
    "lineage": "SELECT r.host_id, l.parent_ref, l.relation, l.source FROM lineage l "
               "JOIN repos r ON r.id = l.child_repo_id",
    "events": "SELECT e.host, e.kind, r.host_id, e.sha256 FROM events e "
              "LEFT JOIN repos r ON r.id = e.repo_id",
    "cursors": "SELECT host, key, cursor FROM crawl_state WHERE key = 'default'",
    "errors": "SELECT host, item FROM crawl_errors",
}  # fmt: skip


def snapshot(db: str) -> dict[str, list[tuple[Any, ...]]]:
    """The index's content as sorted rows (lists keep duplicates visible)."""
    return {name: sorted(query(db, sql), key=repr) for name, sql in SNAPSHOT.items()}


def run_crawl(db: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "modelscan", "crawl", "--host", "all", "--db", db,
            "--workers", "2"]  # fmt: skip
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_gives_the_same_index(
    env: dict[str, str], server: ReplayServer, tmp_path: Path
) -> None:
    """Five SIGKILLs mid-crawl and a restart: same rows as one uninterrupted crawl."""
    child_env = {**os.environ, **env, "REPLICATE_API_TOKEN": TOKEN}
    server.delay = 0.03  # slow enough for kills to land between pages
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    done = run_crawl(clean, child_env)
    while not server.requests and done.poll() is None:
        time.sleep(0.01)
    started = time.monotonic()  # the first request: from here on it is crawling
    assert done.wait(60) == 0, done.stderr.read() if done.stderr else ""
    crawling = time.monotonic() - started
    killed_db = f"sqlite:///{tmp_path / 'killed.sqlite'}"
    rng = random.Random(20240611)
    kills = 0
    while kills < 5:
        before = len(server.requests)
        proc = run_crawl(killed_db, child_env)
        while len(server.requests) == before and proc.poll() is None:
            time.sleep(0.01)  # wait until it is crawling, then kill at a random point
        time.sleep(rng.uniform(0.0, max(0.2, crawling * 0.8)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(60)
    final = run_crawl(killed_db, child_env)
    assert final.wait(60) == 0, final.stderr.read() if final.stderr else ""
    expected, got = snapshot(clean), snapshot(killed_db)
    assert got["repos"]
    assert got["files"]
    for name in SNAPSHOT:
        assert got[name] == expected[name], name
