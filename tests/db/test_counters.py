"""Rank counters equal a full recount after every kind of write, on both databases.

Each test changes the index through the real Store (crawl pages, gone marks,
fingerprints, two processes at once), then compares every counter row with what
``db/counters.py`` ``recount`` gives from the occurrences, and the views
``blob_copies`` and ``spread_copies`` with their definitions before the counters
(kept here as reference queries).
"""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from dbfiles import write_model
from sqlalchemy import Connection, text, update

from modelscan.cli import cli
from modelscan.db import counters
from modelscan.db.engine import make_engine, open_store
from modelscan.db.lineage_rows import as_datetime
from modelscan.db.migrate import upgrade
from modelscan.db.store import Store
from modelscan.db.tables import BLOB_COUNTS, FAMILY_COUNTS
from modelscan.lineage.rows import FamilyRow
from modelscan.records import Fingerprint, Listing, RemoteFile
from modelscan.scanner.fingerprint import fingerprint

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SHA = {n: f"{n:064x}" for n in range(1, 40)}

# blob_copies and spread_copies as they were defined before the counters (the
# owner of a repo without one is its host id, as in spread_family_files).
OLD_BLOB_COPIES = """
SELECT b.sha256 AS sha256, b.format AS format, b.size AS size,
    b.content_id AS content_id, b.weights_id AS weights_id,
    COUNT(CASE WHEN f.gone_at IS NULL THEN f.id END) AS live_copies,
    COUNT(f.id) AS total_copies,
    COUNT(DISTINCT CASE WHEN f.gone_at IS NULL THEN r.host END) AS hosts,
    COUNT(DISTINCT CASE WHEN f.gone_at IS NULL
          THEN r.host || ':' || COALESCE(r.owner, r.host_id) END) AS owners,
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
SELECT c.family, c.sha256, c.blobs, c.copies, c.live_copies, c.hosts, c.owners,
    c.takedown_cost, c.jurisdictions, c.operators,
    COALESCE(d.downloads, 0) AS downloads,
    COALESCE(d.downloads_all_time, 0) AS downloads_all_time,
    c.first_published, c.first_seen, c.last_seen,
    COALESCE(s.gone, 0) AS gone_copies, COALESCE(s.survived, 0) AS survived
FROM (
    SELECT x.family AS family, MIN(x.sha256) AS sha256,
        COUNT(DISTINCT x.sha256) AS blobs, COUNT(*) AS copies,
        COUNT(CASE WHEN x.gone_at IS NULL THEN x.file_id END) AS live_copies,
        COUNT(DISTINCT x.host) AS hosts,
        COUNT(DISTINCT x.host || ':' || x.owner) AS owners,
        COUNT(DISTINCT CASE WHEN x.gone_at IS NULL
              THEN x.host || ':' || x.owner END) AS takedown_cost,
        COUNT(DISTINCT CASE WHEN x.gone_at IS NULL THEN x.country END)
            AS jurisdictions,
        COUNT(DISTINCT CASE WHEN x.gone_at IS NULL THEN x.operator END) AS operators,
        MIN(x.published_at) AS first_published, MIN(x.first_seen) AS first_seen,
        MAX(x.last_seen) AS last_seen
    FROM spread_family_files AS x GROUP BY x.family
) AS c
LEFT JOIN (
    SELECT fr.family AS family, SUM(fr.downloads) AS downloads,
        SUM(fr.downloads_all_time) AS downloads_all_time
    FROM (SELECT DISTINCT family, repo_id, downloads, downloads_all_time
          FROM spread_family_files) AS fr
    GROUP BY fr.family
) AS d ON d.family = c.family
LEFT JOIN (
    SELECT family, COUNT(*) AS gone, SUM(survived) AS survived
    FROM spread_survival GROUP BY family
) AS s ON s.family = c.family
"""


def _rows(conn: Connection, sql: str, key: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in conn.execute(text(f"{sql} ORDER BY {key}")))


def assert_recounted(store: Store) -> dict[str, set[tuple[Any, ...]]]:
    """The counters equal a recount, and the views their old definitions."""

    def check(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
        kept = counters.snapshot(conn)
        views = {
            "blob": _rows(conn, "SELECT * FROM blob_copies", "sha256"),
            "spread": _rows(conn, "SELECT * FROM spread_copies", "family"),
        }
        assert views["blob"] == _rows(conn, OLD_BLOB_COPIES, "b.sha256")
        assert views["spread"] == _rows(conn, OLD_SPREAD_COPIES, "c.family")
        counters.recount(conn)
        assert counters.snapshot(conn) == kept
        conn.rollback()
        return kept

    with store.engine.connect() as conn:
        kept = check(conn)
    assert_top_as_before(store)
    return kept


def assert_top_as_before(store: Store) -> None:
    """`spread --top` ranks, and shows, as the old spread_copies view would."""
    for order in ("live_copies", "takedown_cost"):
        top = store.top_families(1000, order=order)
        by = f"c.{order} DESC, c.copies DESC, c.family"
        old = store.execute(
            lambda c, by=by: c.execute(text(f"{OLD_SPREAD_COPIES} ORDER BY {by}")).all()
        )
        fields = [*FamilyRow.__dataclass_fields__]
        want = [
            FamilyRow(**{
                **{k: v for k, v in r._mapping.items() if k in fields},
                "first_seen": as_datetime(r.first_seen),
                "first_published": as_datetime(r.first_published),
            })
            for r in old
        ]  # fmt: skip
        assert top == want


def rf(path: str, n: int | None, published: datetime | None = None) -> RemoteFile:
    """A hosted file whose sha256 is SHA[n] (None: the host gave no hash)."""
    sha = SHA[n] if n else None
    return RemoteFile(path, 1000 + (n or 0), sha, f"https://h/{path}",
                      published_at=published)  # fmt: skip


def listing(host: str, host_id: str, *files: RemoteFile, **kw: Any) -> Listing:
    """A listing of ``host``, owned by alice unless ``owner`` says otherwise."""
    base: dict[str, Any] = {
        "host": host,
        "host_id": host_id,
        "name": host_id,
        "owner": "alice",
        "url": f"https://{host}/{host_id}",
        "revision": "v1",
        "updated_at": None,
        "files": files,
        "downloads": 10,
    }
    return Listing(**{**base, **kw})


def page(store: Store, host: str, at: datetime, *listings: Listing) -> None:
    """Save one page of ``host`` in a crawl run of its own."""
    run = store.start_run(host, params={})
    store.save_page(run, host, list(listings), next_cursor=None, seen_at=at)
    store.finish_run(run, status="ok", stats={})


def test_crawls_with_changes_keep_counters_equal_to_a_recount(store: Store) -> None:
    """New, changed, gone, taken-down, reappearing and re-owned files recount equal."""
    page(store, "civitai", T0,
         listing("civitai", "1", rf("a.safetensors", 1), rf("b.ckpt", 2)),
         listing("civitai", "2", rf("a.safetensors", 1), owner=None),
         listing("civitai", "3", rf("c.bin", 3), rf("notes.txt", None)))  # fmt: skip
    page(store, "huggingface", T0 + DAY,
         listing("huggingface", "bob/a", rf("model.safetensors", 1, T0), owner="bob"),
         listing("huggingface", "bob/b", rf("x.bin", 2), owner="bob"))  # fmt: skip
    assert_recounted(store)
    # changed (1 -> 4), gone (b.ckpt dropped), a hash given later (notes.txt)
    page(store, "civitai", T0 + 2 * DAY,
         listing("civitai", "1", rf("a.safetensors", 4), revision="v2"),
         listing("civitai", "3", rf("c.bin", 3), rf("notes.txt", 5),
                 revision="v2"))  # fmt: skip
    assert_recounted(store)
    taken = listing("civitai", "2", rf("a.safetensors", 1), status="taken_down")
    page(store, "civitai", T0 + 3 * DAY, taken)
    store.mark_gone("huggingface", "bob/b", at=T0 + 3 * DAY)
    kept = assert_recounted(store)
    blob1 = next(r for r in kept["blob_counts"] if r[0] == SHA[1])
    assert blob1[2:6] == (1, 3, 1, 1)  # live, total, hosts, owners: bob's copy only
    # the taken-down repo comes back, and a repo changes hands
    page(store, "civitai", T0 + 4 * DAY,
         listing("civitai", "2", rf("a.safetensors", 1), owner=None, revision="v3"),
         listing("civitai", "3", rf("c.bin", 3), owner="carol",
                 revision="v2"))  # fmt: skip
    back = listing("huggingface", "bob/b", rf("x.bin", 2), owner="bob", revision="9")
    page(store, "huggingface", T0 + 5 * DAY, back)
    kept = assert_recounted(store)
    owners = {r[2] for r in kept["family_accounts"] if r[0] == SHA[3]}
    assert owners == {"carol"}


def test_recrawls_move_counted_dates_and_downloads_as_a_recount(store: Store) -> None:
    """Downloads, a repo dated later, a repo seen again unchanged, a file dated."""
    later = T0 + 10 * DAY
    page(store, "huggingface", T0,
         listing("huggingface", "r/a", rf("w.safetensors", 1), downloads=5),
         listing("huggingface", "r/b", rf("w.safetensors", 1, later),
                 downloads=7))  # fmt: skip
    assert_recounted(store)
    # r/a seen again unchanged (no file listing), with new downloads and a date
    created = T0 - 100 * DAY
    page(store, "huggingface", T0 + DAY,
         listing("huggingface", "r/a", downloads=50, published_at=created),
         listing("huggingface", "r/b", downloads=7))  # fmt: skip
    kept = assert_recounted(store)
    (blob,) = (r for r in kept["blob_counts"] if r[0] == SHA[1])
    assert blob[6:] == (created, T0, T0 + DAY)  # published, first and last seen
    (family,) = kept["family_counts"]
    assert family[7:9] == (57, 0)  # downloads: 50 + 7
    # r/a's file gets a date of its own, later than the repo's: the earliest moves on
    page(store, "huggingface", T0 + 2 * DAY,
         listing("huggingface", "r/a", rf("w.safetensors", 1, T0 + 20 * DAY),
                 revision="v2", downloads=60))  # fmt: skip
    kept = assert_recounted(store)
    (blob,) = (r for r in kept["blob_counts"] if r[0] == SHA[1])
    assert blob[6] == later
    (family,) = kept["family_counts"]
    assert family[7] == 67


def test_fingerprints_setting_a_weights_id_merge_families(
    store: Store, tmp_path: Path
) -> None:
    """Two hosted blobs become one family when their fingerprints share weights."""
    a = fingerprint(write_model(tmp_path / "a.safetensors", seed=1))
    b = fingerprint(
        write_model(tmp_path / "b.safetensors", seed=1, metadata={"x": "1"})
    )
    assert a.sha256 != b.sha256
    assert a.weights_id == b.weights_id

    def hosted(fp: Fingerprint, repo: str) -> Listing:
        file = RemoteFile("m.safetensors", fp.size, fp.sha256, f"https://h/{repo}")
        return listing("huggingface", repo, file, owner=repo.split("/")[0])

    page(store, "huggingface", T0, hosted(a, "o/a"), hosted(b, "p/b"), hosted(b, "q/b"))
    before = {r[0]: r for r in assert_recounted(store)["family_counts"]}
    assert set(before) == {a.sha256, b.sha256}
    store.save_fingerprint(a, location=str(tmp_path / "a.safetensors"), seen_at=T0)
    store.save_fingerprint(b, location=str(tmp_path / "b.safetensors"), seen_at=T0)
    after = {r[0]: r for r in assert_recounted(store)["family_counts"]}
    assert list(after) == [a.weights_id]
    assert after[a.weights_id][1:4] == (2, 3, 3)  # blobs, copies, live copies
    (top,) = store.top_families(10, order="takedown_cost")
    assert (top.family, top.takedown_cost) == (a.weights_id, 3)


def test_the_lineage_world_recounts_equal(store: Store, tmp_path: Path) -> None:
    """The spread world (local copies, mirrors, conversions, a takedown) agrees."""
    from lineage_world import build, write_files

    build(store, write_files(tmp_path / "world"))
    kept = assert_recounted(store)
    assert any(r[3] > r[4] for r in kept["family_counts"])  # a gone copy counted


def _crawl(url: str, worker: int, barrier: Any, results: Any) -> None:
    """Worker: crawl one host whose repos share blobs with the other's host."""
    try:
        store = open_store(url)
        barrier.wait(timeout=60)
        for i in range(15):
            files = (rf("m.safetensors", 1 + (i % 6)), rf("n.bin", 7 + worker))
            drop = (rf("m.safetensors", 1 + (i % 6)),)
            at, host = T0 + i * DAY, ("civitai", "huggingface")[worker - 1]
            page(store, host, at,
                 listing(host, f"w{i}", *files, owner=f"u{i % 4}"),
                 listing(host, f"w{i // 2}", *drop, owner="z",
                         revision=f"r{i}"))  # fmt: skip
        store.close()
        results.put("ok")
    except BaseException as exc:  # report anything to the parent
        results.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_crawling_at_once_keep_counters_exact(db_url: str) -> None:
    """Two processes crawling hosts of shared blobs at once leave exact counters."""
    open_store(db_url).close()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_crawl, args=(db_url, w, barrier, results)) for w in (1, 2)
    ]
    for p in procs:
        p.start()
    outcome = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert outcome == ["ok", "ok"]
    with open_store(db_url) as store:
        kept = assert_recounted(store)
    held = {r[0] for r in kept["blob_counts"] if r[3]}
    assert held == {SHA[n] for n in (1, 2, 3, 4, 5, 6, 8, 9)}


def test_migration_fills_counters_of_an_existing_index(db_url: str) -> None:
    """An index crawled at 0005 ranks correctly right after upgrading to head."""
    engine = make_engine(db_url)
    upgrade(engine, "0005")
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO hosts (name, first_seen) VALUES ('civitai', '2025-01-01')",
            "INSERT INTO repos (id, host, host_id, owner, status, first_seen, "
            "last_seen) VALUES (1, 'civitai', '1', 'a', 'live', '2025-01-01', "
            "'2025-01-01'), (2, 'civitai', '2', NULL, 'live', '2025-01-01', "
            "'2025-01-01')",
            f"INSERT INTO blobs (sha256, first_seen) VALUES ('{SHA[1]}', '2025-01-01')",
            "INSERT INTO files (repo_id, path, sha256, status, first_seen, "
            f"last_seen, gone_at) VALUES (1, 'a', '{SHA[1]}', 'live', '2025-01-01', "
            f"'2025-01-01', NULL), (2, 'a', '{SHA[1]}', 'gone', '2025-01-01', "
            "'2025-01-02', '2025-01-02')",
        ):
            conn.execute(text(sql))
    engine.dispose()
    with open_store(db_url) as store:
        kept = assert_recounted(store)
    day1, day2 = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
    assert kept["blob_counts"] == {(SHA[1], SHA[1], 1, 2, 1, 1, None, day1, day2)}
    # blobs, copies, live, hosts, owners, takedown cost, downloads (none), dates
    counted = (1, 2, 1, 1, 2, 1, 0, 0, None, day1, day2)
    assert kept["family_counts"] == {(SHA[1], *counted)}


def test_db_recount_repairs_counters(tmp_path: Path) -> None:
    """`modelscan db recount` puts counters someone broke back to the truth."""
    url = f"sqlite:///{tmp_path / 'index.sqlite'}"
    with open_store(url) as store:
        page(store, "civitai", T0, listing("civitai", "1", rf("a.bin", 1)),
             listing("civitai", "2", rf("a.bin", 1), owner="bob"))  # fmt: skip
        good = assert_recounted(store)

        def damage(conn: Connection) -> None:
            conn.execute(update(BLOB_COUNTS).values(live_copies=99))
            conn.execute(update(FAMILY_COUNTS).values(takedown_cost=0))

        store.execute(damage, write=True)
    result = CliRunner().invoke(cli, ["db", "recount", "--db", url])
    assert result.exit_code == 0, result.output
    assert "blob_counts" in result.output
    with open_store(url) as store:
        assert assert_recounted(store) == good
