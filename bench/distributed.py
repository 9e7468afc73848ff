"""Benchmark: a distributed crawl's throughput by workers and tokens, under a budget.

A replay server on loopback serves a synthetic Hub (``tests/hubworld.py``), answers
each request after ``--latency`` seconds (a host far away), and enforces a
per-token budget of ``--budget`` requests per second, answering 429 past it, as
the Hub does. For 1, 2 and 4 ``modelscan worker`` processes (``--concurrency``
threads each) and 1 and 2 tokens (``HF_TOKENS``), a distributed crawl of the
world into a fresh PostgreSQL schema is timed as a user runs it (``crawl
--distributed --wait``). Each row prints the requests per second the server
answered, the 429s it sent, and the ideal: ``min(workers x r1, tokens x budget)``,
where ``r1`` is one worker's rate without a budget, measured first in the same
run.

    python bench/distributed.py [--repos 400] [--budget 40] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import psycopg  # noqa: E402
from hubworld import write_world  # noqa: E402
from replay import ReplayServer  # noqa: E402

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def start_workers(count: int, concurrency: int, env: dict[str, str], logs: Path
                  ) -> list[subprocess.Popen[bytes]]:  # fmt: skip
    """Start ``count`` workers and wait until each is ready."""
    procs = []
    for i in range(count):
        log = logs / f"worker-{uuid.uuid4().hex[:6]}.log"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "modelscan", "worker", "--concurrency",
             str(concurrency), "--name", f"bench{i}-{uuid.uuid4().hex[:6]}@%h"],
            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True))  # fmt: skip
        while b" ready." not in log.read_bytes():
            if procs[-1].poll() is not None:
                sys.exit(f"worker failed to start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
    return procs


def run_one(server: ReplayServer, env: dict[str, str], workers: int,
            concurrency: int, tokens: int, budget: int | None, logs: Path
            ) -> tuple[float, int, int]:  # fmt: skip
    """One timed distributed crawl: (requests per second, requests, 429s)."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    db = f"{PG_URL}?options=-csearch_path%3D{schema}"
    names = [f"hf_bench-token-{i}" for i in range(tokens)]
    env = {**env, "MODELSCAN_DATABASE_URL": db, "HF_TOKENS": ",".join(names),
           "MODELSCAN_QUEUE": f"bench-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    subprocess.run([sys.executable, "-m", "modelscan", "db", "upgrade", "--db", db],
                   env=env, check=True, capture_output=True)  # fmt: skip
    procs = start_workers(workers, concurrency, env, logs)
    server.reset()
    server.rate_limited = 0
    args = ["--budget", f"{budget}/1"] if budget else ["--budget", "100000/1"]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "modelscan", "crawl", "--host", "huggingface",
         "--distributed", "--wait", "--json", *args],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.monotonic() - started
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(30)
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    if done.returncode != 0:
        sys.exit(f"crawl failed:\n{done.stdout}\n{done.stderr}")
    answered = len(server.requests) - server.rate_limited
    return answered / seconds, len(server.requests), server.rate_limited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=400)
    parser.add_argument("--budget", type=int, default=40, help="requests/s a token")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=2)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="modelscan-bench-distributed-"))
    write_world(tmp / "hosts", opts.repos)
    with ReplayServer(tmp / "hosts", delay=opts.latency) as server:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HF_", "MODELSCAN_"))}  # fmt: skip
        env.update(HF_ENDPOINT=server.base("huggingface"), HF_HUB_DISABLE_TELEMETRY="1",
                   HF_HOME=str(tmp / "hf-home"))  # fmt: skip
        r1, _, _ = run_one(server, env, 1, opts.concurrency, 1, None, tmp)
        server.enforce_budget(opts.budget, 1.0)
        print(f"{opts.repos} repos, {opts.latency * 1000:.0f} ms per answer, budget "
              f"{opts.budget} requests/s per token (server-enforced), "
              f"{opts.concurrency} threads per worker")  # fmt: skip
        print(f"one worker, no budget: r1 = {r1:.1f} requests/s\n")
        print(f"{'workers':>7} {'tokens':>6} {'req/s':>7} {'ideal':>7} "
              f"{'ratio':>6} {'429s':>5}")  # fmt: skip
        for tokens in (1, 2):
            for workers in (1, 2, 4):
                rate, _, refused = run_one(server, env, workers, opts.concurrency,
                                           tokens, opts.budget, tmp)  # fmt: skip
                ideal = min(workers * r1, tokens * opts.budget)
                print(f"{workers:>7} {tokens:>6} {rate:>7.1f} {ideal:>7.1f} "
                      f"{rate / ideal:>6.2f} {refused:>5}")  # fmt: skip


if __name__ == "__main__":
    main()
