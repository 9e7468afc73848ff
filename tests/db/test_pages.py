"""Crawl writes: pages, events, cursors, locks and gone marks, on both databases."""

from __future__ import annotations

import multiprocessing
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, func, select, update

from modelscan.db import runs
from modelscan.db.pages import PageCounts
from modelscan.db.store import Store
from modelscan.db.tables import EVENTS, FILES, LINEAGE, LOCKS, REPOS, TABLES
from modelscan.errors import StoreError
from modelscan.records import LineageRef, Listing, RemoteFile

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SHA = {n: f"{n:064x}" for n in range(1, 10)}


def rf(path: str, n: int | None, **hashes: str) -> RemoteFile:
    """A remote file whose sha256 is SHA[n]."""
    sha = SHA[n] if n else None
    return RemoteFile(
        path, 1000 + (n or 0), sha, f"https://h/{path}", hashes=dict(hashes)
    )


def listing(host_id: str, files: tuple[RemoteFile, ...], **kw: Any) -> Listing:
    """A Civitai-like listing."""
    base: dict[str, Any] = {
        "host": "civitai",
        "host_id": host_id,
        "name": host_id,
        "owner": "alice",
        "url": f"https://civitai.com/models/{host_id}",
        "revision": "v1",
        "updated_at": T0,
        "files": files,
    }
    base.update(kw)
    return Listing(**base)


def dump(store: Store, *tables: Table) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables`` (default: all), sorted, for before/after comparisons."""

    def read(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
        return {
            t.name: sorted((tuple(r) for r in conn.execute(select(t))), key=repr)
            for t in tables or TABLES
        }

    return store.execute(read)  # type: ignore[no-any-return]


def events(store: Store) -> list[tuple[str, str | None]]:
    """(kind, sha256) of every event, in order."""
    stmt = select(EVENTS.c.kind, EVENTS.c.sha256).order_by(EVENTS.c.id)
    return [tuple(r) for r in store.execute(lambda c: c.execute(stmt).all())]  # type: ignore[misc]


@pytest.fixture
def run(store: Store) -> int:
    """A running crawl of civitai."""
    return store.start_run("civitai", params={"limit": 2})


def test_first_page_creates_repos_files_blobs(store: Store, run: int) -> None:
    """A new page stores repos, occurrences and the hashes the host published."""
    page = [
        listing("1", (rf("a.safetensors", 1, autov1="ABCDEF12", crc32="0d4a1185"),)),
        listing("2", (rf("b.ckpt", 2), rf("readme.md", None))),
    ]
    counts = store.save_page(run, "civitai", page, next_cursor="c2", seen_at=T0)
    assert counts == PageCounts(new=2, changed=0, unchanged=0, files=3)
    (m,) = store.find("abcdef12")
    assert (m.kind, m.host, m.repo, m.version, m.path, m.owner) == (
        "autov1",
        "civitai",
        "1",
        "v1",
        "a.safetensors",
        "alice",
    )
    assert [x.kind for x in store.find("85114A0D")] == ["crc32"]  # Civitai's spelling
    assert store.load_cursor("civitai") == "c2"
    assert store.known_revisions("civitai", ["1", "2", "3"]) == {"1": "v1", "2": "v1"}


def test_same_page_twice_gives_the_same_rows(store: Store, run: int) -> None:
    """Redoing a committed page (a killed crawl resuming) changes no row."""
    page = [listing("1", (rf("a", 1), rf("b", 2))), listing("2", (rf("a", 1),))]
    store.save_page(run, "civitai", page, next_cursor="c2", seen_at=T0)
    before = dump(store, REPOS, FILES, EVENTS, LINEAGE)
    counts = store.save_page(run, "civitai", page, next_cursor="c2", seen_at=T0)
    assert counts == PageCounts(new=0, changed=0, unchanged=2, files=3)
    assert dump(store, REPOS, FILES, EVENTS, LINEAGE) == before


def test_crash_inside_the_page_transaction_keeps_nothing(
    store: Store, run: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure between the upserts and the cursor save rolls the whole page back."""
    store.save_page(
        run, "civitai", [listing("1", (rf("a", 1),))], next_cursor="c1", seen_at=T0
    )
    before = dump(store)

    def crash(*args: object) -> None:
        raise RuntimeError("killed between upsert and cursor save")

    monkeypatch.setattr(runs, "save_cursor", crash)
    page2 = [listing("2", (rf("b", 2),)), listing("1", (rf("c", 3),), revision="v2")]
    with pytest.raises(RuntimeError):
        store.save_page(
            run, "civitai", page2, next_cursor="c2", seen_at=T0 + timedelta(1)
        )
    after = dump(store)
    after["crawl_locks"] = before[
        "crawl_locks"
    ]  # the heartbeat is in the same txn anyway
    assert after == before
    assert store.load_cursor("civitai") == "c1"


def test_changes_close_rows_and_write_events(store: Store, run: int) -> None:
    """Removed, changed and added files each get an event; old rows keep their dates."""
    t1 = T0 + timedelta(days=1)
    store.save_page(
        run,
        "civitai",
        [listing("1", (rf("a", 1), rf("b", 2)))],
        next_cursor=None,
        seen_at=T0,
    )
    page = [listing("1", (rf("a", 3), rf("c", 4)), revision="v2")]
    counts = store.save_page(run, "civitai", page, next_cursor=None, seen_at=t1)
    assert counts == PageCounts(new=0, changed=1, unchanged=0, files=2)
    assert events(store) == [
        ("appeared", None),
        ("appeared", SHA[1]),
        ("appeared", SHA[2]),
        ("changed", None),
        ("gone", SHA[2]),
        ("changed", SHA[3]),
        ("appeared", SHA[4]),
    ]
    (old_a,) = store.find(SHA[1])
    assert (old_a.status, old_a.since, old_a.last_seen) == ("gone", t1, T0)
    (b,) = store.find(SHA[2])
    assert (b.status, b.since) == ("gone", t1)
    assert [(m.status, m.version) for m in store.find(SHA[3])] == [("live", "v2")]


def test_unchanged_head_without_files_only_refreshes(store: Store, run: int) -> None:
    """A listing at the stored revision with no files (tree skipped) keeps them."""
    store.save_page(
        run, "civitai", [listing("1", (rf("a", 1),))], next_cursor=None, seen_at=T0
    )
    t1 = T0 + timedelta(days=2)
    counts = store.save_page(
        run, "civitai", [listing("1", ())], next_cursor=None, seen_at=t1
    )
    assert counts.unchanged == 1
    (m,) = store.find(SHA[1])
    assert (m.status, m.last_seen) == ("live", t1)


def test_taken_down_repo_keeps_its_files_as_taken_down(store: Store, run: int) -> None:
    """mark_gone closes live files with the status and time, once."""
    store.save_page(
        run, "civitai", [listing("1", (rf("a", 1),))], next_cursor=None, seen_at=T0
    )
    t1 = T0 + timedelta(days=5)
    store.mark_gone("civitai", "1", at=t1, status="taken_down", run_id=run)
    store.mark_gone("civitai", "1", at=t1 + timedelta(days=1), status="taken_down")
    (m,) = store.find(SHA[1])
    assert (m.status, m.since) == ("taken_down", t1)
    assert events(store)[-2:] == [("taken_down", None), ("taken_down", SHA[1])]
    assert len(events(store)) == 4
    store.mark_gone("civitai", "unknown-id", at=t1)  # unknown repos are ignored


def test_listing_already_taken_down_is_recorded_not_live(
    store: Store, run: int
) -> None:
    """Files first seen on a taken-down model are kept as taken down, never doubled."""
    page = [listing("9", (rf("x", 5),), status="taken_down")]
    store.save_page(run, "civitai", page, next_cursor=None, seen_at=T0)
    store.save_page(run, "civitai", page, next_cursor=None, seen_at=T0 + timedelta(1))
    assert [(m.status, m.since) for m in store.find(SHA[5])] == [("taken_down", T0)]


def test_gated_only_changes_the_repo_status(store: Store, run: int) -> None:
    """A gated repo's files stay live: they can still be downloaded."""
    store.save_page(
        run, "civitai", [listing("1", (rf("a", 1),))], next_cursor=None, seen_at=T0
    )
    store.mark_gone("civitai", "1", at=T0, status="gated")
    assert [m.status for m in store.find(SHA[1])] == ["live"]


def test_versions_of_one_model_in_a_page_are_merged(store: Store, run: int) -> None:
    """Several listings of one host_id (Civitai versions) keep all their files live."""
    page = [
        listing("1", (rf("v2.safetensors", 2),), revision="v2"),
        listing("1", (rf("v1.safetensors", 1),), revision="v1"),
    ]
    store.save_page(run, "civitai", page, next_cursor=None, seen_at=T0)
    store.save_page(run, "civitai", page, next_cursor=None, seen_at=T0 + timedelta(1))
    assert [(m.version, m.status) for m in store.find(SHA[1])] == [("v1", "live")]
    assert [(m.version, m.status) for m in store.find(SHA[2])] == [("v2", "live")]
    assert store.known_revisions("civitai", ["1"]) == {"1": "v2"}


def test_declared_parents_resolve_when_the_parent_arrives(
    store: Store, run: int
) -> None:
    """A parent reference stays text until its repo is crawled, then points at it."""
    child = listing(
        "7",
        (),
        lineage=(
            LineageRef("civitai:8", "finetune", "declared-card"),
            LineageRef("SD 1.5", "finetune", "declared-card"),
        ),
    )
    store.save_page(run, "civitai", [child], next_cursor=None, seen_at=T0)
    store.save_page(run, "civitai", [child], next_cursor=None, seen_at=T0)
    store.save_page(run, "civitai", [listing("8", ())], next_cursor=None, seen_at=T0)
    rows = store.execute(
        lambda c: c.execute(
            select(LINEAGE.c.parent_ref, REPOS.c.host_id)
            .outerjoin(REPOS, REPOS.c.id == LINEAGE.c.parent_repo_id)
            .order_by(LINEAGE.c.parent_ref)
        ).all()
    )
    assert [tuple(r) for r in rows] == [("SD 1.5", None), ("civitai:8", "8")]


def test_unseen_since_lists_live_repos_a_pass_missed(store: Store, run: int) -> None:
    """Repos not seen since a pass began are candidates for the gone sweep."""
    t1 = T0 + timedelta(days=1)
    page = [listing("1", ()), listing("2", ()), listing("3", ())]
    store.save_page(run, "civitai", page, next_cursor=None, seen_at=T0)
    store.save_page(run, "civitai", [listing("2", ())], next_cursor=None, seen_at=t1)
    store.mark_gone("civitai", "3", at=t1)
    assert store.unseen_since("civitai", t1) == ["1"]
    assert store.unseen_since("huggingface", t1) == []


def test_second_crawl_of_a_host_is_refused(store: Store, run: int) -> None:
    """start_run refuses while a live crawl holds the host's lock, then allows."""
    with pytest.raises(StoreError, match="another crawl of civitai is running since"):
        store.start_run("civitai", params={})
    other = store.start_run("huggingface", params={})
    store.finish_run(run, status="ok", stats={"pages": 1})
    again = store.start_run("civitai", params={})
    assert again > other > run
    assert [(r.id, r.status, r.stats) for r in store.runs("civitai")][1] == (
        run,
        "ok",
        {"pages": 1},
    )


def test_stale_lock_is_taken_over(store: Store, run: int) -> None:
    """A lock whose heartbeat is over an hour old is taken; the old run can't write."""
    old = datetime.now(UTC) - runs.LOCK_STALE_AFTER - timedelta(minutes=1)
    store.execute(
        lambda c: c.execute(update(LOCKS).values(heartbeat_at=old)), write=True
    )
    new = store.start_run("civitai", params={})
    assert [r.status for r in store.runs("civitai")] == ["running", "abandoned"]
    with pytest.raises(StoreError, match=f"crawl run {run} no longer holds the lock"):
        store.save_page(run, "civitai", [], next_cursor="x", seen_at=T0)
    store.save_page(new, "civitai", [], next_cursor="x", seen_at=T0)


def test_lock_of_a_dead_process_is_taken_over(store: Store, run: int) -> None:
    """A crawl killed on this machine leaves a lock the next run may take at once."""
    proc = multiprocessing.get_context("spawn").Process(target=int)
    proc.start()
    proc.join()
    store.execute(
        lambda c: c.execute(
            update(LOCKS).values(pid=proc.pid, machine=socket.gethostname())
        ),
        write=True,
    )
    assert store.start_run("civitai", params={}) > run


def test_listing_of_another_host_is_refused(store: Store, run: int) -> None:
    """A page mixing hosts is a caller bug: refused, nothing written."""
    stray = Listing(
        host="huggingface",
        host_id="x/y",
        name="y",
        owner="x",
        url="u",
        revision="r",
        updated_at=None,
    )
    with pytest.raises(
        StoreError, match="a page of civitai holds listings of huggingface"
    ):
        store.save_page(run, "civitai", [stray], next_cursor="c", seen_at=T0)
    assert store.load_cursor("civitai") is None


def test_errors_are_recorded_and_counted(store: Store, run: int) -> None:
    """record_error keeps each failed item; runs() counts them."""
    store.record_error(run, "civitai", "model 12", "HTTP 500 after retries")
    store.record_error(run, "civitai", "model 13", "bad JSON")
    (info,) = store.runs()
    assert (info.id, info.errors, info.params) == (run, 2, {"limit": 2})
    n = store.execute(
        lambda c: c.execute(select(func.count()).select_from(EVENTS)).scalar()
    )
    assert n == 0
