"""Growth follows the hosts' own dates: a first crawl of two years of copies.

The world is a Hub whose repos re-upload one file between 2023 and 2025; the
replay server gives each file's ``lastCommit`` (the repo's ``lastModified``) and
each repo's ``createdAt``, as the Hub's tree with ``expand=True`` does.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hubworld import write_weight_repo
from indexrows import query
from replay import ReplayServer

from modelscan.cli import cli

WEIGHTS = b"weights re-uploaded for two years " * 64
SHA = hashlib.sha256(WEIGHTS).hexdigest()
# repo -> the date its copy was committed (also its createdAt)
UPLOADS = {
    "origin/model": "2023-01-10T00:00:00.000Z",
    "fan1/model": "2023-01-20T00:00:00.000Z",
    "fan2/model": "2023-06-01T00:00:00.000Z",
    "fan3/model": "2024-02-15T00:00:00.000Z",
    "fan4/model": "2024-02-20T00:00:00.000Z",
    "fan5/model": "2025-01-05T00:00:00.000Z",
}
START = datetime(2023, 1, 10, tzinfo=UTC)
WINDOW = timedelta(days=30)


def _window(date: str) -> int:
    at = datetime.fromisoformat(date.replace("Z", "+00:00"))
    return (at - START) // WINDOW


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """Six repos holding the same file, committed over two years."""
    root = tmp_path / "world"
    for repo_id, date in UPLOADS.items():
        write_weight_repo(root, repo_id, {"model.safetensors": WEIGHTS}, created=date)
    return root


def run(*args: str) -> str:
    """Run the CLI in-process; fail the test on a non-zero exit."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def spread_json(db: str) -> dict[str, object]:
    """``modelscan spread SHA --json``."""
    return json.loads(run("spread", SHA, "--db", db, "--json"))


def test_first_crawl_dates_growth_by_the_hosts_dates(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Every copy counts in the window of its commit date, not of the crawl."""
    db = f"sqlite:///{tmp_path / 'index.sqlite'}"
    run("crawl", "--host", "huggingface", "--db", db)
    got = spread_json(db)
    windows = got["added_per_30_days"]
    assert isinstance(windows, list)
    assert windows[0]["start"] == START.isoformat()
    expected = {_window(d): 0 for d in UPLOADS.values()}
    for date in UPLOADS.values():
        expected[_window(date)] += 1
    assert {i: w["added"] for i, w in enumerate(windows) if w["added"]} == expected
    assert len(windows) == max(expected) + 1  # two years: 25 windows, not one
    assert all(
        w["dated_by"] == {"published_at": w["added"]} for w in windows if w["added"]
    )
    assert got["growth_dated_by"] == {"published_at": 6, "first_seen": 0}
    assert got["first_published_per_host"] == {"huggingface": START.isoformat()}
    text = run("spread", SHA, "--db", db)
    assert "by the hosts' dates" in text
    assert "2023-01-10: +2" in text  # origin and fan1, ten days apart


def test_a_later_crawl_does_not_move_the_dates(
    env: dict[str, str], server: ReplayServer, world: Path, tmp_path: Path
) -> None:
    """A repo's new commit dates only its new files; the earlier windows stay."""
    db = f"sqlite:///{tmp_path / 'index.sqlite'}"
    run("crawl", "--host", "huggingface", "--db", db)
    before = spread_json(db)["added_per_30_days"]
    # fan2 pushes a README change: a new commit, the weights untouched
    write_weight_repo(
        world,
        "fan2/model",
        {"model.safetensors": WEIGHTS},
        created=UPLOADS["fan2/model"],
        modified="2026-11-01T00:00:00.000Z",
        sha="b" * 40,
    )
    server.reset()
    server.visit = 1  # the server reads its records again
    run("crawl", "--host", "huggingface", "--db", db)
    assert server.count(r"/api/models/fan2/model/tree/") == 1  # it was re-read
    assert spread_json(db)["added_per_30_days"] == before


def test_a_recrawl_dates_rows_crawled_before_the_index_kept_dates(
    env: dict[str, str], server: ReplayServer, tmp_path: Path
) -> None:
    """Repos saved without dates get their trees read once more, then never again."""
    path = tmp_path / "index.sqlite"
    db = f"sqlite:///{path}"
    run("crawl", "--host", "huggingface", "--db", db)
    # what migration 0004 leaves in an index crawled before it: no dates at all
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE files SET published_at = NULL")
        conn.execute("UPDATE repos SET published_at = NULL")
    assert spread_json(db)["growth_dated_by"] == {"published_at": 0, "first_seen": 6}
    server.reset()
    run("crawl", "--host", "huggingface", "--db", db)
    assert server.count(r"/tree/") == len(UPLOADS)  # each undated repo, once
    assert spread_json(db)["growth_dated_by"] == {"published_at": 6, "first_seen": 0}
    server.reset()
    run("crawl", "--host", "huggingface", "--db", db)
    assert server.count(r"/tree/") == 0  # dated now: incremental again
    rows = query(db, "SELECT COUNT(*) FROM files WHERE published_at IS NULL")
    assert rows == [(0,)]
