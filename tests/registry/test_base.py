"""The crawl loop: resume, limits, per-item errors, a host that stays down, sweeps."""

from __future__ import annotations

import pytest
from fakes import FakeHost, FakeStore

from modelscan.errors import HostError, HostUnavailable, RateLimited, StoreError
from modelscan.registry.base import PASS_SUFFIX, CrawlStats, crawl
from modelscan.registry.http import HttpClient


def test_full_crawl_saves_every_listing_and_ends_with_no_cursor(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """A crawl to the end stores all listings and leaves the cursor at "start over"."""
    stats = crawl(fake_host, store)
    assert store.ids("fake") == set("abcdef")
    assert stats.status == "ok"
    assert stats.complete
    assert stats.pages == 3
    assert (stats.new, stats.listings, stats.files) == (6, 6, 6)
    assert store.load_cursor("fake") is None
    assert store.runs[stats.run_id]["status"] == "ok"
    assert store.runs[stats.run_id]["stats"]["new"] == 6


def test_max_pages_then_resume_covers_everything_once(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """Stopping after one page and resuming fetches each page exactly once."""
    crawl(fake_host, store, max_pages=1)
    assert store.load_cursor("fake") == "1"
    crawl(fake_host, store)
    assert fake_host.fetched == [0, 1, 2]
    assert store.ids("fake") == set("abcdef")
    assert [e for e in store.events if e[1] == "appeared"] == [
        (x, "appeared", "live") for x in "abcdef"
    ]


def test_limit_cutting_a_page_keeps_its_cursor_so_nothing_is_skipped(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """--limit 3 stops mid-page; the next run redoes that page: no listing is lost."""
    first = crawl(fake_host, store, limit=3)
    assert first.listings == 3
    assert not first.complete
    assert store.ids("fake") == {"a", "b", "c"}
    assert store.load_cursor("fake") == "1"  # page 1 again, not page 2
    second = crawl(fake_host, store)
    assert store.ids("fake") == set("abcdef")
    assert second.new == 3
    assert second.unchanged == 1


def test_unchanged_listing_costs_no_detail_request(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """A recrawl fetches details only for new or changed revisions."""
    crawl(fake_host, store)
    fake_host.detailed.clear()
    fake_host.revisions["d"] = "r2"
    stats = crawl(fake_host, store)
    assert fake_host.detailed == ["d"]
    assert (stats.changed, stats.unchanged, stats.details) == (1, 5, 1)
    assert ("d", "changed", "live") in store.events


def test_bad_entry_and_bad_detail_are_recorded_and_the_crawl_goes_on(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """A malformed entry or detail answer is one error row; the others are saved."""
    fake_host.pages[1] = ["c", "bad-entry", "d"]
    fake_host.bad_details = {"e"}
    stats = crawl(fake_host, store)
    assert stats.status == "ok"
    assert stats.errors == 2
    assert store.ids("fake") == set("abcdf")
    assert {item for _, _, item, _ in store.errors} == {"bad-entry", "e"}
    fake_host.bad_details = set()
    crawl(fake_host, store)  # the failed one is retried on the next pass
    assert "e" in store.ids("fake")


def test_a_failed_detail_is_tried_again_after_the_rest_of_its_page(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """A detail failing once is fetched again in the same run and saved, no error."""
    fake_host.flaky_details = {"c"}
    stats = crawl(fake_host, store)
    assert (stats.status, stats.errors, stats.retried) == ("ok", 0, 1)
    assert fake_host.detailed == ["a", "b", "c", "d", "c", "e", "f"]
    assert store.ids("fake") == set("abcdef")
    assert store.errors == []


def test_a_detail_failing_twice_is_recorded_once(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """Two failures of one item in a run: one crawl_errors row, the run goes on."""
    fake_host.bad_details = {"c"}
    stats = crawl(fake_host, store)
    assert (stats.status, stats.errors, stats.retried) == ("ok", 1, 1)
    assert fake_host.detailed.count("c") == 2
    assert [item for _, _, item, _ in store.errors] == ["c"]


def test_many_failures_in_a_row_stop_the_host_and_keep_what_was_saved(
    sleeps: list[float], store: FakeStore
) -> None:
    """25 items failing one after the other take the host for down; page 1 stays."""
    good = [f"ok{i}" for i in range(3)]
    bad = [f"x{i}" for i in range(30)]
    host = FakeHost(HttpClient("fake", sleep=sleeps.append), pages=[good, bad])
    host.bad_details = set(bad)
    with pytest.raises(HostUnavailable, match="25 items failed in a row"):
        crawl(host, store)
    assert store.ids("fake") == set(good)
    assert store.load_cursor("fake") == "1"  # the next run starts at the failing page
    assert store.runs[1]["status"] == "failed"


def test_a_host_wide_rate_limit_on_a_detail_stops_the_host(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """A 429 asking for an hour is not one item's fault: the host stops at once."""
    fake_host.limited_details = {"c"}
    with pytest.raises(RateLimited, match="retry after 3600s"):
        crawl(fake_host, store)
    assert store.ids("fake") == set("ab")


def test_host_down_keeps_committed_pages_and_resumes_there(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """A page failing after retries stops the run; the next run starts at that page."""
    fake_host.down_at_page = 2
    with pytest.raises(HostError, match="503"):
        crawl(fake_host, store)
    assert store.ids("fake") == set("abcd")
    assert store.load_cursor("fake") == "2"
    assert store.runs[1]["status"] == "failed"
    assert store.locks == {}  # the lock is released for the next run
    fake_host.down_at_page = None
    crawl(fake_host, store)
    assert fake_host.fetched == [0, 1, 2]
    assert store.ids("fake") == set("abcdef")


def test_kill_before_a_commit_redoes_only_that_page(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """Dying before a page's transaction loses only that page, redone on restart."""
    store.fail_after_pages = 2  # the pass-start marker and page 0 commit, then death
    with pytest.raises(KeyboardInterrupt):
        crawl(fake_host, store)
    assert store.ids("fake") == {"a", "b"}
    store.fail_after_pages = None
    crawl(fake_host, store)
    assert fake_host.fetched == [0, 1, 1, 2]
    assert sorted(e[0] for e in store.events) == list("abcdef")  # nothing doubled


def test_second_concurrent_crawl_is_refused(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """Two crawls of one host at once: the second gets the store's lock error."""
    store.start_run("fake", params={})
    with pytest.raises(StoreError, match="another crawl"):
        crawl(fake_host, store)
    assert fake_host.fetched == []


def test_detail_gone_marks_listing_gone_not_saved(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """A listing whose detail request says gone is marked gone on a recrawl."""
    crawl(fake_host, store)
    fake_host.revisions["b"] = "r2"
    fake_host.gone_details = {"b"}
    stats = crawl(fake_host, store)
    assert store.status("fake", "b") == "gone"
    assert stats.gone == 1


def test_sweep_after_a_complete_pass_asks_about_unseen_listings(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """Listings missing from a complete pass are checked and marked as the host says."""
    crawl(fake_host, store)
    assert store.load_cursor("fake", "default" + PASS_SUFFIX) is not None
    fake_host.pages = [["a", "b"], ["c"]]
    fake_host.checked = {"d": "gone", "e": "renamed"}  # "f" still answers: live
    stats = crawl(fake_host, store)
    assert (store.status("fake", "d"), store.status("fake", "e")) == ("gone", "renamed")
    assert store.status("fake", "f") == "live"
    assert stats.gone == 2


def test_no_sweep_for_a_filtered_listing(fake_host: FakeHost, store: FakeStore) -> None:
    """A narrowed listing (--author) never concludes that others are gone."""
    crawl(fake_host, store)
    fake_host.complete_listing, fake_host.cursor_key = False, "author=x"
    fake_host.pages = [["a"]]
    fake_host.checked = {"b": "gone"}
    crawl(fake_host, store)
    assert store.status("fake", "b") == "live"


def test_full_ignores_the_saved_cursor(fake_host: FakeHost, store: FakeStore) -> None:
    """--full starts again from the first page."""
    crawl(fake_host, store, max_pages=2)
    crawl(fake_host, store, full=True, max_pages=1)
    assert fake_host.fetched == [0, 1, 0]


def test_workers_give_the_same_index_as_one_thread(store: FakeStore) -> None:
    """Parallel detail requests store exactly what a sequential crawl stores."""
    from modelscan.registry.http import HttpClient

    pages = [[f"m{i}-{j}" for j in range(5)] for i in range(3)]
    one, many = FakeStore(), FakeStore()
    crawl(FakeHost(HttpClient("fake"), pages=pages), one)
    crawl(FakeHost(HttpClient("fake"), pages=pages), many, workers=4)
    assert {k: v["revision"] for k, v in one.repos.items()} == {
        k: v["revision"] for k, v in many.repos.items()
    }
    assert one.files == many.files


def test_progress_sees_running_counts_and_summary_is_one_line(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """Progress runs after every detail and page; the summary is a single line."""
    seen: list[tuple[int, int]] = []
    stats = crawl(
        fake_host, store, progress=lambda s: seen.append((s.listings, s.details))
    )
    assert len(seen) == stats.pages + stats.details == 9
    assert seen == sorted(seen)
    assert seen[-1] == (6, 6)
    assert "\n" not in stats.summary()
    assert "6 listings" in stats.summary()
    assert CrawlStats("x").as_dict()["status"] == "running"


def test_a_next_cursor_pointing_at_the_same_page_stops_the_run(
    fake_host: FakeHost, store: FakeStore
) -> None:
    """A host answering the same cursor again cannot make the crawl loop forever."""
    from modelscan.errors import UnexpectedResponse
    from modelscan.registry.base import Page

    original = fake_host.fetch_page

    def stuck(cursor: str | None, *, limit: int | None = None) -> Page:
        page = original(cursor, limit=limit)
        return Page(page.payload, cursor or page.next_cursor, cursor)

    fake_host.fetch_page = stuck  # type: ignore[method-assign]
    with pytest.raises(UnexpectedResponse, match="this page again"):
        crawl(fake_host, store)
    assert fake_host.fetched == [0, 1]
    assert store.errors[-1][2] == "page 1"
