"""The distributed crawl with real parts: Redis or RabbitMQ, workers, PostgreSQL.

Each test starts the replay server over a synthetic Hub of a few hundred repos,
real ``modelscan worker`` processes on a queue of its own, and compares what a
distributed crawl left in a PostgreSQL schema with an inline crawl of the same
world: same repos, files, declared parents and events, whatever the broker,
however many workers, and after a worker was SIGKILLed in the middle.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hubworld import write_weights_world, write_world
from replay import ReplayServer
from sqlalchemy import Connection, text

from modelscan.cli import cli
from modelscan.db.engine import open_store
from modelscan.distributed.state import index_prefix

pytestmark = pytest.mark.postgres

REPOS = 300
BROKERS = {
    "redis": "redis://127.0.0.1:6379/0",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
}


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """A synthetic Hub of REPOS repos (adapters among them, some gated)."""
    root = tmp_path / "hosts"
    write_world(root, REPOS)
    return root


@pytest.fixture
def server(world: Path) -> Iterator[ReplayServer]:
    with ReplayServer(world) as srv:
        yield srv


@pytest.fixture
def base_env(server: ReplayServer, tmp_path: Path) -> dict[str, str]:
    """The environment of every process: the replay Hub, a queue of this test's own."""
    ours = ("HF_", "MODELSCAN_", "CIVITAI", "REPLICATE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(
        HF_ENDPOINT=server.base("huggingface"),
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        MODELSCAN_QUEUE=f"test-{uuid.uuid4().hex[:10]}",
        MODELSCAN_REDIS_URL="redis://127.0.0.1:6379/0",
        MODELSCAN_VISIBILITY_TIMEOUT="4",
    )
    return env


class Workers:
    """``modelscan worker`` processes, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.tag = uuid.uuid4().hex[:8]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        index = len(self.procs)
        log = self.logs / f"worker{index}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelscan", "worker", "--concurrency",
             str(concurrency), "--name", f"w{index}-{self.tag}@%h"],
            env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.1)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def log_text(self) -> str:
        return "".join(p.read_text() for p in sorted(self.logs.glob("worker*.log")))


@pytest.fixture
def index_urls(pg_urls: tuple[str, str]) -> tuple[str, str]:
    """(inline, distributed) index URLs: two fresh PostgreSQL schemas."""
    return pg_urls


def rows(db: str, sql: str) -> set[tuple[Any, ...]]:
    def run(conn: Connection) -> set[tuple[Any, ...]]:
        return {tuple(r) for r in conn.execute(text(sql))}

    with open_store(db) as store:
        return set(store.execute(run))


def snapshot(db: str) -> dict[str, Any]:
    """What a crawl leaves: repos, live files, parents, events by kind, runs."""
    return {
        "repos": rows(db, "SELECT host, host_id, revision, status FROM repos"),
        "files": rows(db, "SELECT r.host_id, f.path, f.sha256, f.status FROM files f "
                          "JOIN repos r ON r.id = f.repo_id"),
        "parents": rows(db, "SELECT r.host_id, l.parent_ref, l.relation, l.source "
                            "FROM lineage l JOIN repos r ON r.id = l.child_repo_id"),
        "events": rows(db, "SELECT kind, count(*) FROM events GROUP BY kind"),
        "cursor": rows(db, "SELECT key, cursor FROM crawl_state"
                           " WHERE key NOT LIKE '%pass-started'"),
    }  # fmt: skip


def crawl(env: dict[str, str], db: str, *args: str) -> Any:
    """``modelscan crawl`` in this process with ``env`` (CliRunner)."""
    result = CliRunner().invoke(
        cli, ["crawl", "--host", "huggingface", "--db", db, *args], env=env
    )
    return result


def clear_redis(db: str) -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for key in client.scan_iter(f"{index_prefix(db)}:*"):
        client.delete(key)


@pytest.fixture
def workers(base_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    group = Workers(base_env, tmp_path)
    yield group
    group.stop()


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_distributed_crawl_leaves_the_index_an_inline_crawl_leaves(
    broker: str,
    base_env: dict[str, str],
    index_urls: tuple[str, str],
    workers: Workers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers on Redis or RabbitMQ: same repos, files, parents, events."""
    inline_db, distributed_db = index_urls
    for key, value in base_env.items():
        monkeypatch.setenv(key, value)
    inline = crawl(base_env, inline_db, "--json")
    assert inline.exit_code == 0, inline.output
    base_env["MODELSCAN_BROKER_URL"] = BROKERS[broker]
    base_env["MODELSCAN_DATABASE_URL"] = distributed_db
    clear_redis(distributed_db)
    workers.start()
    workers.start()
    result = crawl(base_env, distributed_db, "--distributed", "--wait", "--json")
    assert result.exit_code == 0, result.output + workers.log_text()[-3000:]
    (summary,) = json.loads(result.stdout)["hosts"]
    (expected,) = json.loads(inline.stdout)["hosts"]
    assert summary["status"] == "ok"
    for name in ("listings", "new", "files", "details", "errors", "unread"):
        assert summary[name] == expected[name], name
    assert snapshot(distributed_db) == snapshot(inline_db)
    assert "Traceback" not in workers.log_text()


def test_a_worker_killed_mid_crawl_loses_and_doubles_nothing(
    server: ReplayServer,
    base_env: dict[str, str],
    index_urls: tuple[str, str],
    workers: Workers,
) -> None:
    """SIGKILL a worker while it crawls, start another: the inline crawl's index."""
    inline_db, distributed_db = index_urls
    assert crawl(base_env, inline_db).exit_code == 0
    base_env["MODELSCAN_DATABASE_URL"] = distributed_db
    clear_redis(distributed_db)
    server.delay = 0.01  # a few seconds of crawling to kill it in
    first = workers.start(concurrency=4)
    started = crawl(base_env, distributed_db, "--distributed", "--json")
    assert started.exit_code == 0, started.output
    (run,) = json.loads(started.stdout)["hosts"]
    saved = "SELECT count(*) FROM repos"
    deadline = time.monotonic() + 60
    while next(iter(rows(distributed_db, saved)))[0] < REPOS // 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    workers.kill(first)  # tasks in flight die with it, unacknowledged
    workers.start(concurrency=4)
    from modelscan.distributed import wait_for

    os.environ["MODELSCAN_REDIS_URL"] = base_env["MODELSCAN_REDIS_URL"]
    stats = wait_for(distributed_db, run["run_id"])
    assert stats.status == "ok"
    assert snapshot(distributed_db) == snapshot(inline_db)


def test_two_workers_on_one_token_stay_inside_the_hosts_budget(
    server: ReplayServer,
    base_env: dict[str, str],
    index_urls: tuple[str, str],
    workers: Workers,
) -> None:
    """A host allowing 20 requests a second per token: no 429 with --budget 20/1.

    The control run, with a budget ten times what the host allows, is refused
    (and still completes through the retries), so the count can fail. The host's
    rate is one that eight worker threads exceed even on a loaded machine (each
    saved repo also updates the rank counters).
    """
    control_db, distributed_db = index_urls
    base_env["HF_TOKEN"] = "hf_shared-token"
    runs = {}
    for db, budget in ((control_db, "200/1"), (distributed_db, "20/1")):
        clear_redis(db)
        server.enforce_budget(20, 1.0)  # windows of the host start afresh
        server.rate_limited = 0
        env = workers.env = {**base_env, "MODELSCAN_DATABASE_URL": db}
        workers.start(concurrency=4)
        workers.start(concurrency=4)
        result = crawl(env, db, "--distributed", "--wait", "--json",
                       "--budget", budget)  # fmt: skip
        workers.stop()
        assert result.exit_code == 0, result.output
        (runs[budget],) = json.loads(result.stdout)["hosts"]
        runs[budget]["429"] = server.rate_limited
    assert runs["200/1"]["429"] > 0
    assert runs["20/1"]["429"] == 0
    assert runs["20/1"]["listings"] == runs["200/1"]["listings"] == REPOS
    assert "hf_shared-token" not in workers.log_text()


def test_status_shows_the_broker_while_a_distributed_crawl_runs(
    server: ReplayServer,
    base_env: dict[str, str],
    index_urls: tuple[str, str],
    workers: Workers,
) -> None:
    """Status lists the worker taking the queue and the crawl's open tasks."""
    _, db = index_urls
    base_env["MODELSCAN_DATABASE_URL"] = db
    clear_redis(db)
    server.delay = 0.01
    workers.start()
    started = crawl(base_env, db, "--distributed", "--json")
    (run,) = json.loads(started.stdout)["hosts"]
    shown = CliRunner().invoke(cli, ["status", "--db", db, "--json"], env=base_env)
    assert shown.exit_code == 0, shown.output
    broker = json.loads(shown.stdout)["broker"]
    assert broker["workers"] == [f"w0-{workers.tag}@{socket.gethostname()}"]
    assert broker["queue"] == base_env["MODELSCAN_QUEUE"]
    assert broker["open_tasks"][str(run["run_id"])] >= 1
    from modelscan.distributed import wait_for

    os.environ["MODELSCAN_REDIS_URL"] = base_env["MODELSCAN_REDIS_URL"]
    assert wait_for(db, run["run_id"]).status == "ok"


def test_waiting_without_any_worker_ends_in_one_line(
    base_env: dict[str, str], index_urls: tuple[str, str]
) -> None:
    """No worker on the queue: waiting gives up with what to start, run kept open."""
    from modelscan.distributed import DistributedError, enqueue_crawl, wait_for

    _, db = index_urls
    clear_redis(db)
    os.environ.update(MODELSCAN_QUEUE=base_env["MODELSCAN_QUEUE"],
                      HF_ENDPOINT=base_env["HF_ENDPOINT"])  # fmt: skip
    try:
        run_id = enqueue_crawl("huggingface", db)
        with pytest.raises(DistributedError, match="is a `modelscan worker` running"):
            wait_for(db, run_id, stall=1.0, poll=0.1)
    finally:
        for name in ("MODELSCAN_QUEUE", "HF_ENDPOINT"):
            os.environ.pop(name, None)
    ((status,),) = rows(db, "SELECT status FROM crawl_runs")
    assert status == "running"


def test_a_distributed_deep_crawl_reads_what_an_inline_one_reads(
    tmp_path: Path,
    model_files: dict[str, Path],
    index_urls: tuple[str, str],
) -> None:
    """--deep --link through workers: inline's fingerprints and edges, one read."""
    root = tmp_path / "weights-hosts"
    write_weights_world(root, model_files["minilm"].read_bytes())
    inline_db, distributed_db = index_urls
    blobs = ("SELECT sha256, format, structure_id, tensor_count, fingerprinted_at "
             "IS NOT NULL FROM blobs")  # fmt: skip
    sketches = "SELECT count(*) FROM tensors WHERE sketch IS NOT NULL"
    with ReplayServer(root) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=server.base("huggingface"), HF_HUB_DISABLE_TELEMETRY="1",
                   HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
                   MODELSCAN_QUEUE=f"test-{uuid.uuid4().hex[:10]}",
                   MODELSCAN_DATABASE_URL=distributed_db)  # fmt: skip
        assert crawl(env, inline_db, "--deep").exit_code == 0
        linked = CliRunner().invoke(cli, ["link", "--db", inline_db], env=env)
        assert linked.exit_code == 0, linked.output
        clear_redis(distributed_db)
        group = Workers(env, tmp_path)
        try:
            group.start()
            server.reset()
            result = crawl(env, distributed_db, "--deep", "--link", "--distributed",
                           "--wait", "--json")  # fmt: skip
        finally:
            group.stop()
        reads = server.count(r"/resolve/[^?]*model\.safetensors")
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)["hosts"]
    assert (summary["deep_files"], summary["deep_skipped"]) == (1, 1)
    assert rows(distributed_db, blobs) == rows(inline_db, blobs)
    assert rows(distributed_db, sketches) == rows(inline_db, sketches) != {(0,)}
    assert 0 < reads <= 40  # one blob, read once, within one file's budget
    edges = ("SELECT r.host_id, l.parent_ref, l.relation, l.source FROM lineage l "
             "JOIN repos r ON r.id = l.child_repo_id")  # fmt: skip
    found = rows(distributed_db, edges)
    assert found == rows(inline_db, edges)
    assert any(source == "identical-hash" for *_, source in found)  # the two copies
