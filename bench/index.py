"""Benchmark the index: bulk ingest, `where` lookups and the per-blob spread view.

Fills a fresh index with a synthetic crawl (default 2,000,000 file occurrences
over 500,000 blobs and 300,000 repos on three hosts, blob popularity skewed so
that a few blobs have thousands of copies) through SQLAlchemy Core
``executemany`` inserts, on SQLite and on PostgreSQL, then prints:

- ingest rate (occurrences/s, and all rows/s) with every index and foreign key
  in place, timing the database calls (not the making of the synthetic rows),
- p50/p99 of ``Store.find`` by full sha256 and by autov2 (a 10-hex prefix,
  upper case as Civitai shows it), over 1000 random blobs each,
- the time of ``blob_copies`` for one blob and for the top 100 blobs.

Run: ``python bench/index.py`` (full size), ``--scale 0.1`` for a quick run,
``--no-postgres`` for SQLite only. Targets: lookup p99 < 5 ms on both; ingest
>= 20,000 occurrences/s on SQLite.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import insert, text

from modelscan.db.engine import open_store
from modelscan.db.store import Store
from modelscan.db.tables import BLOBS, FILES, HOSTS, REPOS

FULL = {"files": 2_000_000, "blobs": 500_000, "repos": 300_000}
HOST_NAMES = ("huggingface", "civitai", "replicate")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 20_000
T0 = datetime(2023, 1, 1, tzinfo=UTC)


def sha_of(kind: str, i: int) -> str:
    return hashlib.sha256(f"{kind}{i}".encode()).hexdigest()


def iter_batches(
    n: int, make: Callable[[int], dict[str, Any]]
) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, n, BATCH):
        yield [make(i) for i in range(start, min(n, start + BATCH))]


def ingest(store: Store, sizes: dict[str, int], seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    n_files, n_blobs, n_repos = sizes["files"], sizes["blobs"], sizes["repos"]
    blob_sha = [sha_of("blob", i) for i in range(n_blobs)]
    # Skewed popularity: blob k is picked with probability ~ 1/(k+1)^0.8 (clipped).
    file_blob = np.minimum(
        (rng.pareto(1.2, n_files) * n_blobs / 40).astype(np.int64), n_blobs - 1
    )
    file_blob[:n_blobs] = np.arange(n_blobs)  # every blob has at least one copy
    # A crawl saves a page of repos with their files, so occurrences arrive in
    # repo order (repo ids grow as repos are found); their blobs are random.
    file_repo = np.sort(rng.integers(0, n_repos, n_files))
    file_day = rng.integers(0, 700, n_files)
    gone = rng.random(n_files) < 0.05

    def repo(i: int) -> dict[str, Any]:
        at = T0 + timedelta(days=int(i % 700))
        return {
            "id": i + 1,
            "host": HOST_NAMES[i % 3],
            "host_id": f"owner{i % 90_000}/m{i}",
            "name": f"m{i}",
            "owner": f"owner{i % 90_000}",
            "url": None,
            "kind": None,
            "license": None,
            "downloads": i % 5000,
            "likes": None,
            "revision": "r1",
            "updated_at": None,
            "status": "live",
            "first_seen": at,
            "last_seen": at,
            "gone_at": None,
            "extra": None,
        }

    def blob(i: int) -> dict[str, Any]:
        sha = blob_sha[i]
        return {"sha256": sha, "size": 1000 + i, "autov2": sha[:10], "first_seen": T0}

    def occurrence(i: int) -> dict[str, Any]:
        at = T0 + timedelta(days=int(file_day[i]))
        return {
            "repo_id": int(file_repo[i]) + 1,
            "path": f"weights-{i}.safetensors",
            "size": 1000 + int(file_blob[i]),
            "sha256": blob_sha[int(file_blob[i])],
            "url": None,
            "status": "gone" if gone[i] else "live",
            "first_seen": at,
            "last_seen": at,
            "gone_at": at + timedelta(days=30) if gone[i] else None,
            "extra": None,
        }

    def load(table: Any, n: int, make: Callable[[int], dict[str, Any]]) -> float:
        """Insert n rows in batches; return the seconds spent in database calls.

        That is executemany and commit, SQLAlchemy's parameter processing
        included, but not the making of the synthetic rows.
        """
        spent = 0.0
        for rows in iter_batches(n, make):
            t = time.perf_counter()
            with store.engine.begin() as conn:
                conn.execute(insert(table), rows)
            spent += time.perf_counter() - t
        return spent

    hosts = [{"name": h, "first_seen": T0} for h in HOST_NAMES]
    timings = {"catalog_s": load(HOSTS, len(hosts), hosts.__getitem__)}
    timings["catalog_s"] += load(REPOS, n_repos, repo) + load(BLOBS, n_blobs, blob)
    timings["files_s"] = load(FILES, n_files, occurrence)
    timings["total_s"] = timings["catalog_s"] + timings["files_s"]
    if store.engine.dialect.name == "postgresql":  # keep the id sequence in step
        with store.engine.begin() as conn:
            conn.execute(
                text("SELECT setval('repos_id_seq', (SELECT max(id) FROM repos))")
            )
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return timings


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49] * 1000, q[98] * 1000


def time_lookups(
    store: Store, n_blobs: int, count: int, seed: int
) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(seed + 1)
    picks = [sha_of("blob", int(i)) for i in rng.integers(0, n_blobs, count)]
    out = {}
    for label, spell in (("sha256", lambda s: s), ("autov2", lambda s: s[:10].upper())):
        samples = []
        for sha in picks:
            t = time.perf_counter()
            found = store.find(spell(sha))
            samples.append(time.perf_counter() - t)
            if not found or found[0].sha256 != sha:
                raise SystemExit(f"lookup by {label} of {sha} found {found[:1]}")
        out[label] = percentiles(samples)
    return out


def time_views(store: Store, n_blobs: int) -> dict[str, float]:
    one = sha_of("blob", n_blobs // 2)
    queries = {
        "blob_copies_one_ms": (
            "SELECT * FROM blob_copies WHERE sha256 = :s",
            {"s": one},
        ),
        "blob_copies_top100_ms": (
            "SELECT * FROM blob_copies ORDER BY live_copies DESC LIMIT 100",
            {},
        ),
    }
    out = {}
    for label, (sql, params) in queries.items():
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            rows = store.execute(lambda c, q=sql, p=params: c.execute(text(q), p).all())
            best = min(best, time.perf_counter() - t)
            assert rows
        out[label] = best * 1000
    return out


def run_one(
    name: str, url: str, sizes: dict[str, int], lookups: int, seed: int
) -> None:
    store = open_store(url)
    try:
        t = ingest(store, sizes, seed)
        rows = sum(sizes.values()) + len(HOST_NAMES)
        print(
            f"[{name}] ingest: {sizes['files']:,} occurrences in "
            f"{t['files_s']:.1f} s = "
            f"{sizes['files'] / t['files_s']:,.0f} occurrences/s; all {rows:,} rows in "
            f"{t['total_s']:.1f} s = {rows / t['total_s']:,.0f} rows/s"
        )
        for label, (p50, p99) in time_lookups(
            store, sizes["blobs"], lookups, seed
        ).items():
            print(
                f"[{name}] where by {label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
                f"({lookups} lookups)"
            )
        for label, ms in time_views(store, sizes["blobs"]).items():
            print(f"[{name}] {label.removesuffix('_ms')}: {ms:,.1f} ms")
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of full size"
    )
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--sqlite-dir", type=Path, default=None, help="where the file goes"
    )
    args = parser.parse_args()
    sizes = {k: max(10, int(v * args.scale)) for k, v in FULL.items()}
    print(f"sizes: {sizes}")
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(dir=args.sqlite_dir) as tmp:
            run_one(
                "sqlite",
                f"sqlite:///{tmp}/bench.sqlite",
                sizes,
                args.lookups,
                args.seed,
            )
    if not args.no_postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            url = (
                "postgresql+psycopg://postgres@127.0.0.1:5432/test"
                f"?options=-csearch_path%3D{schema}"
            )
            run_one("postgresql", url, sizes, args.lookups, args.seed)
        finally:
            with psycopg.connect(PG_SERVER, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
