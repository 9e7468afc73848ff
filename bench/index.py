"""Benchmark the index: bulk ingest, `where` lookups and the per-blob spread view.

Fills a fresh index with a synthetic crawl (default 2,000,000 file occurrences
over 500,000 blobs and 300,000 repos on three hosts, blob popularity skewed so
that a few blobs have thousands of copies) through SQLAlchemy Core
``executemany`` inserts, on SQLite and on PostgreSQL, then prints:

- ingest rate (occurrences/s, and all rows/s) with every index and foreign key
  in place, timing the database calls (not the making of the synthetic rows),
- p50/p99 of ``Store.find`` by full sha256 and by autov2 (a 10-hex prefix,
  upper case as Civitai shows it), over 1000 random blobs each,
- the time of ``blob_copies`` for one blob and for the top 100 blobs, and of
  ``spread --top 100`` (``Store.top_families``) by live copies and by takedown
  cost: before (the views' definitions before the rank counters, grouping every
  occurrence) and after (the views reading the counters), in the same run,
- the full recount of the counters (what migration 0006 and ``db recount`` do),
- what the counters add to saving a page: median ``save_page`` time of pages of
  new repos (new and popular blobs) with the counters and with their calls
  replaced by no-ops, alternating, on the filled index.

Run: ``python bench/index.py`` (full size), ``--scale 0.1`` for a quick run,
``--no-postgres`` for SQLite only. Targets: lookup p99 < 5 ms on both; ingest
>= 20,000 occurrences/s on SQLite; top 100 < 100 ms on both.
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

from modelscan.db import counters
from modelscan.db.engine import open_store
from modelscan.db.store import Store
from modelscan.db.tables import BLOBS, FILES, HOSTS, REPOS
from modelscan.records import Listing, RemoteFile

FULL = {"files": 2_000_000, "blobs": 500_000, "repos": 300_000}
HOST_NAMES = ("huggingface", "civitai", "replicate")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 20_000
T0 = datetime(2023, 1, 1, tzinfo=UTC)
SAVE_PAGES = 40  # pages saved with and without the counters, alternating
PAGE_REPOS = 25  # repos per page, 4 files each: 2 new blobs, 2 held ones

# The views before the rank counters (db/views/ at revision 0005), as queries.
OLD_BLOB_COPIES = """
SELECT b.sha256 AS sha256, b.format AS format, b.size AS size,
    b.content_id AS content_id, b.weights_id AS weights_id,
    COUNT(CASE WHEN f.gone_at IS NULL THEN f.id END) AS live_copies,
    COUNT(f.id) AS total_copies,
    COUNT(DISTINCT CASE WHEN f.gone_at IS NULL THEN r.host END) AS hosts,
    COUNT(DISTINCT CASE WHEN f.gone_at IS NULL
          THEN r.host || ':' || COALESCE(r.owner, '') END) AS owners,
    COUNT(DISTINCT CASE WHEN f.gone_at IS NULL THEN h.country END) AS jurisdictions,
    MIN(COALESCE(f.published_at, r.published_at)) AS first_published,
    MIN(f.first_seen) AS first_seen, MAX(f.last_seen) AS last_seen
FROM blobs AS b
LEFT JOIN files AS f ON f.sha256 = b.sha256
LEFT JOIN repos AS r ON r.id = f.repo_id
LEFT JOIN hosts AS h ON h.name = r.host
GROUP BY b.sha256, b.format, b.size, b.content_id, b.weights_id
"""
OLD_SPREAD_COPIES = """
SELECT c.family, c.sha256, c.copies, c.live_copies, c.hosts, c.owners,
    c.takedown_cost, c.jurisdictions, c.operators,
    COALESCE(d.downloads, 0) AS downloads,
    COALESCE(d.downloads_all_time, 0) AS downloads_all_time,
    c.first_published, c.first_seen
FROM (
    SELECT x.family AS family, MIN(x.sha256) AS sha256, COUNT(*) AS copies,
        COUNT(CASE WHEN x.gone_at IS NULL THEN x.file_id END) AS live_copies,
        COUNT(DISTINCT x.host) AS hosts,
        COUNT(DISTINCT x.host || ':' || x.owner) AS owners,
        COUNT(DISTINCT CASE WHEN x.gone_at IS NULL
              THEN x.host || ':' || x.owner END) AS takedown_cost,
        COUNT(DISTINCT CASE WHEN x.gone_at IS NULL THEN x.country END)
            AS jurisdictions,
        COUNT(DISTINCT CASE WHEN x.gone_at IS NULL THEN x.operator END) AS operators,
        MIN(x.published_at) AS first_published, MIN(x.first_seen) AS first_seen
    FROM spread_family_files AS x GROUP BY x.family
) AS c
LEFT JOIN (
    SELECT fr.family AS family, SUM(fr.downloads) AS downloads,
        SUM(fr.downloads_all_time) AS downloads_all_time
    FROM (SELECT DISTINCT family, repo_id, downloads, downloads_all_time
          FROM spread_family_files) AS fr
    GROUP BY fr.family
) AS d ON d.family = c.family
"""


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
    t = time.perf_counter()
    store.recount()
    timings["recount_s"] = time.perf_counter() - t
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


def best_ms(fn: Callable[[], Any], runs: int) -> float:
    """Best wall time of ``runs`` calls, in ms (each must return rows)."""
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        rows = fn()
        best = min(best, time.perf_counter() - t)
        assert rows
    return best * 1000


def time_views(store: Store, n_blobs: int, old_runs: int) -> dict[str, float]:
    one = sha_of("blob", n_blobs // 2)

    def sql(q: str, **params: Any) -> Callable[[], Any]:
        return lambda: store.execute(lambda c: c.execute(text(q), params).all())

    def top(order: str) -> Callable[[], Any]:
        return lambda: store.top_families(100, order=order)

    old_top = (
        OLD_SPREAD_COPIES + " ORDER BY c.{} DESC, c.copies DESC, c.family LIMIT 100"
    )
    new = {
        "blob_copies one": sql("SELECT * FROM blob_copies WHERE sha256 = :s", s=one),
        "blob_copies top100": sql(
            "SELECT * FROM blob_copies ORDER BY live_copies DESC LIMIT 100"
        ),
        "spread --top 100 --by live-copies": top("live_copies"),
        "spread --top 100 --by takedown-cost": top("takedown_cost"),
        "blob_copies top100, counted columns only": sql(
            "SELECT sha256, live_copies, total_copies, hosts, owners "
            "FROM blob_copies ORDER BY live_copies DESC LIMIT 100"
        ),
        "spread_copies top100, every column (survived computed)": sql(
            "SELECT * FROM spread_copies ORDER BY takedown_cost DESC LIMIT 100"
        ),
        "spread_copies top100, counted columns only": sql(
            "SELECT family, copies, live_copies, hosts, owners, takedown_cost "
            "FROM spread_copies ORDER BY takedown_cost DESC LIMIT 100"
        ),
    }
    old = {
        "blob_copies one": sql(OLD_BLOB_COPIES.replace(
            "GROUP BY", "WHERE b.sha256 = :s GROUP BY"), s=one),
        "blob_copies top100": sql(
            OLD_BLOB_COPIES + " ORDER BY live_copies DESC LIMIT 100"
        ),
        "spread --top 100 --by live-copies": sql(old_top.format("live_copies")),
        "spread --top 100 --by takedown-cost": sql(old_top.format("takedown_cost")),
    }  # fmt: skip
    out = {}
    for label in new:
        if label in old and old_runs:
            out[f"{label}: before"] = best_ms(old[label], old_runs)
        out[f"{label}: after"] = best_ms(new[label], 5)
    return out


def save_cost(store: Store, sizes: dict[str, int], seed: int) -> tuple[float, float]:
    """Median save_page ms of fresh pages with and without the rank counters.

    "Without" swaps the counter functions for no-ops (the rest of save_page is
    unchanged), alternating page by page so both meet the same index state.
    """
    rng = np.random.default_rng(seed + 2)
    kept = {n: getattr(counters, n) for n in ("count_files", "ensure_blobs")}
    samples: dict[bool, list[float]] = {True: [], False: []}
    run = store.start_run("huggingface", params={})
    for p in range(SAVE_PAGES):
        listings = []
        for i in range(PAGE_REPOS):
            held = rng.pareto(1.2, 2) * sizes["blobs"] / 40
            shas = [sha_of("new", p * 1000 + i * 2 + k) for k in range(2)]
            shas += [sha_of("blob", min(int(h), sizes["blobs"] - 1)) for h in held]
            files = tuple(
                RemoteFile(f"f{k}.safetensors", 1000, sha, None)
                for k, sha in enumerate(shas)
            )
            owner = f"saver{(p * PAGE_REPOS + i) % 500}"
            host_id = f"{owner}/p{p}-{i}"
            listings.append(
                Listing(host="huggingface", host_id=host_id, name=host_id,
                        owner=owner, url=None, revision="r1", updated_at=None,
                        files=files)
            )  # fmt: skip
        with_counters = p % 2 == 0
        for name, fn in kept.items():
            setattr(counters, name, fn if with_counters else lambda *a, **k: None)
        t = time.perf_counter()
        store.save_page(run, "huggingface", listings, next_cursor=None, seen_at=T0)
        samples[with_counters].append(time.perf_counter() - t)
    for name, fn in kept.items():
        setattr(counters, name, fn)
    store.finish_run(run, status="ok", stats={})
    return (
        statistics.median(samples[True]) * 1000,
        statistics.median(samples[False]) * 1000,
    )


def run_one(
    name: str, url: str, sizes: dict[str, int], lookups: int, seed: int, old_runs: int
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
        print(f"[{name}] recount of the rank counters: {t['recount_s']:.1f} s")
        for label, ms in time_views(store, sizes["blobs"], old_runs).items():
            print(f"[{name}] {label}: {ms:,.1f} ms")
        with_ms, without_ms = save_cost(store, sizes, seed)
        print(
            f"[{name}] save_page of {PAGE_REPOS} repos x 4 files, median of "
            f"{SAVE_PAGES // 2}: {with_ms:.1f} ms with the counters, "
            f"{without_ms:.1f} ms without ({with_ms / without_ms:.2f}x)"
        )
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of full size"
    )
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--old-runs", type=int, default=1, help="runs of each 'before' query (0: none)"
    )
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
                args.old_runs,
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
            run_one("postgresql", url, sizes, args.lookups, args.seed, args.old_runs)
        finally:
            with psycopg.connect(PG_SERVER, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
