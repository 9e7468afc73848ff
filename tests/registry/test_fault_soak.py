"""Fault soak: a replayed Hub of a few thousand repos that fails at random.

5% of answers are 503, 2% are truncated bodies and 1% are connection resets in
the middle of the body, on every endpoint (list pages, trees through
huggingface_hub, adapter configs). Crawled until a run reports no errors (at
most three runs), the index must hold the same (host, repo, path, sha256) set as
a crawl of the same world without faults. The client retries once per request
(instead of five times) so that item failures, the in-run second try and the
next run's retry are all exercised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubworld import write_world
from replay import ReplayServer
from sqlalchemy import Connection, text

from modelscan.db.engine import open_store
from modelscan.registry.base import CrawlStats, crawl
from modelscan.registry.http import HttpClient
from modelscan.registry.huggingface import HuggingFaceHost

REPOS = 2500


def crawl_into(server: ReplayServer, db: str) -> CrawlStats:
    """One run of the Hugging Face crawl into ``db``, retrying each request once."""
    client = HttpClient("huggingface", retries=1, sleep=lambda s: None)
    host = HuggingFaceHost(client, server.base("huggingface"))
    with open_store(db) as store:
        return crawl(host, store, workers=4)


def index(db: str) -> set[tuple[Any, ...]]:
    """(host, repo, path, sha256) of every live file, and each repo's status."""
    sql = (
        "SELECT r.host, r.host_id, f.path, f.sha256, r.status FROM files f "
        "JOIN repos r ON r.id = f.repo_id WHERE f.gone_at IS NULL"
    )

    def run(conn: Connection) -> set[tuple[Any, ...]]:
        return {tuple(r) for r in conn.execute(text(sql))}

    with open_store(db) as store:
        return set(store.execute(run))


def test_a_crawl_under_random_faults_ends_with_the_same_index(tmp_path: Path) -> None:
    """5% 503, 2% truncated, 1% resets: at most 3 runs give the fault-free index."""
    records = write_world(tmp_path / "hosts", REPOS)
    with ReplayServer(tmp_path / "hosts") as server:
        clean_db = f"sqlite:///{tmp_path / 'clean.sqlite'}"
        clean = crawl_into(server, clean_db)
        assert (clean.status, clean.errors, clean.listings) == ("ok", 0, REPOS)
        expected = index(clean_db)
        assert {r[1] for r in expected} == set(records)

        server.chaos(seed=8, server_errors=0.05, truncations=0.02, resets=0.01)
        faulty_db = f"sqlite:///{tmp_path / 'faulty.sqlite'}"
        runs = [crawl_into(server, faulty_db)]
        while runs[-1].errors and len(runs) < 3:
            runs.append(crawl_into(server, faulty_db))
        faults = dict(server.chaos_counts)

    assert [r.status for r in runs] == ["ok"] * len(runs)
    assert runs[-1].errors == 0
    assert faults["5xx"] > 100 and faults["truncated"] > 30 and faults["reset"] > 15  # noqa: PT018
    assert runs[0].retried > 0  # items failed once and were tried again in the run
    assert index(faulty_db) == expected
