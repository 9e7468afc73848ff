"""``modelscan serve``: Datasette over a crawled index, read-only, all described."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from report_world import HOSTILE

from modelscan.cli import cli
from modelscan.web.metadata import QUERIES, TABLES, datasette_metadata, describe

pytest.importorskip("datasette")


@pytest.fixture(scope="module")
def module_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Datasette serves SQLite only: this module's index is a SQLite file."""
    return f"sqlite:///{tmp_path_factory.mktemp('serve') / 'index.sqlite'}"


def _schema(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%'")]  # fmt: skip
        return {
            n: [r[1] for r in conn.execute(f'PRAGMA table_info("{n}")')] for n in names
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(indexed: str) -> Iterator[str]:
    """``modelscan serve`` running on a free port; its base URL."""
    port = _free_port()
    args = [sys.executable, "-m", "modelscan", "serve", "--db", indexed,
            "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if requests.get(f"{base}/-/versions.json", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            pytest.fail("modelscan serve did not answer within 30 s")
        yield base
    finally:
        proc.terminate()  # serve stops its Datasette on SIGTERM
        proc.wait(timeout=20)


def test_every_table_view_and_column_is_described(indexed: str) -> None:
    """Each live table, view and column has its description in the metadata."""
    schema = _schema(Path(indexed.removeprefix("sqlite:///")))
    assert [t for t in schema if t not in TABLES] == []
    missing = [f"{t}.{c}" for t, cols in schema.items() for c in cols
               if not describe(t, c)]  # fmt: skip
    assert missing == []
    meta = datasette_metadata("index", schema)["databases"]["index"]["tables"]
    for table, cols in schema.items():
        assert meta[table]["title"]
        assert meta[table]["description"]
        assert sorted(meta[table]["columns"]) == sorted(cols)


def test_metadata_out_writes_what_serve_uses(indexed: str, tmp_path: Path) -> None:
    """--metadata-out writes the metadata (named after the file) and serves nothing."""
    out = tmp_path / "metadata.json"
    result = CliRunner().invoke(
        cli, ["serve", "--db", indexed, "--metadata-out", str(out)]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads(out.read_text())
    assert sorted(meta["databases"]["index"]["queries"]) == sorted(QUERIES)
    assert meta["databases"]["index"]["tables"]["files"]["columns"]["sha256"]


def test_canned_queries_answer(
    served: str, hosts: tuple[Path, dict[str, bytes]]
) -> None:
    """Where else a file lives (by its AutoV2 prefix) and the most copied weights."""
    sha = hashlib.sha256(hosts[1]["base"]).hexdigest()
    rows = requests.get(f"{served}/index/where_else.json", timeout=10, params={
        "sha256": sha[:10].upper(), "_shape": "objects"}).json()["rows"]  # fmt: skip
    holders = sorted(f"{r['host']}:{r['host_id']}" for r in rows)
    assert holders == sorted(["huggingface:org/base", "huggingface:mirror/base",
                              "huggingface:evil/copy", f"huggingface:{HOSTILE}",
                              "civitai:7001"])  # fmt: skip
    top = requests.get(f"{served}/index/most_copied.json", timeout=10,
                       params={"_shape": "objects"}).json()["rows"]  # fmt: skip
    assert top[0]["sha256"] == sha
    assert top[0]["takedown_cost"] == 4
    page = requests.get(f"{served}/index", timeout=10).text
    for title, _, _ in QUERIES.values():
        assert title.replace("'", "&#39;") in page


def test_writes_are_refused(served: str, indexed: str) -> None:
    """SQL that writes is refused, and the index file does not change."""
    path = Path(indexed.removeprefix("sqlite:///"))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for sql in ("DELETE FROM repos", "UPDATE repos SET owner = 'x'",
                "CREATE TABLE t (x)"):  # fmt: skip
        answer = requests.get(f"{served}/index.json", params={"sql": sql}, timeout=10)
        assert answer.status_code == 400
        assert answer.json()["ok"] is False
    post = requests.post(f"{served}/index/-/query", data={"sql": "DELETE FROM repos"},
                         timeout=10)  # fmt: skip
    assert post.status_code >= 400
    sql = "SELECT count(*) AS n FROM repos"
    count = requests.get(f"{served}/index.json", timeout=10,
                         params={"sql": sql, "_shape": "objects"}).json()  # fmt: skip
    assert count["rows"][0]["n"] == 8
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_postgres_index_is_a_one_line_error() -> None:
    """Datasette serves SQLite only: a PostgreSQL URL is refused in one line."""
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    result = CliRunner().invoke(cli, ["serve", "--db", url])
    assert result.exit_code == 2
    assert "Datasette serves SQLite files only" in result.output
    assert "Traceback" not in result.output


def test_without_datasette_says_what_to_install(tmp_path: Path) -> None:
    """Where Datasette is not installed, one line names the extra to install."""
    code = ("import sys; sys.modules['datasette'] = None\n"
            "from modelscan.cli import main; main()")  # fmt: skip
    env = {**os.environ, "MODELSCAN_DATABASE_URL": f"sqlite:///{tmp_path}/i.sqlite"}
    done = subprocess.run([sys.executable, "-c", code, "serve"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "install modelscan-provenance[web]" in done.stderr
    assert "Traceback" not in done.stderr
