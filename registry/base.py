"""The one crawl loop shared by every host, and the protocols it is written against.

A host module supplies a small class implementing :class:`Host` (fetch a list
page, parse it purely, fetch details of a new or changed listing, check whether
a listing that vanished is really gone). :func:`crawl` drives it against a
:class:`Store`: load the saved cursor, fetch a page, parse it, fetch details only
for listings whose revision differs from the index, then save the page's rows and
the next cursor in ONE transaction (``Store.save_page``). A crawl killed at any
point therefore resumes at the first page that was not committed: nothing is
lost and, as ``save_page`` is idempotent, nothing is doubled.

Example:
    >>> from modelscan.db.engine import open_store  # doctest: +SKIP
    >>> host = HOSTS["civitai"].from_env()  # doctest: +SKIP
    >>> crawl(host, open_store(), max_pages=2).as_dict()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypedDict, runtime_checkable

from modelscan.errors import HostError, HostUnavailable, RateLimited, UnexpectedResponse
from modelscan.records import Listing
from modelscan.registry.deep import Deep, read_files
from modelscan.registry.http import Budget, HttpClient
from modelscan.registry.parsing import ItemError, utcnow

logger = logging.getLogger(__name__)

GONE_STATUSES = frozenset({"gone", "renamed"})  # marked with Store.mark_gone, not saved
PASS_SUFFIX = ":pass-started"  # cursor key holding when the current full pass began
# Items failing one after the other (each after its retries) before the host is
# taken to be down and its crawl stops; what was committed stays committed.
MAX_CONSECUTIVE_FAILURES = 25


class HostOptions(TypedDict, total=False):
    """The options every host's ``from_env`` takes (and ``make_host``), each optional.

    A host without filters refuses ``author``, ``search`` and ``tag`` (ValueError).
    """

    endpoint: str | None  # base URL overriding the host's env var and default
    rate: float | None  # at most this many requests per second
    author: str | None  # only this owner's listings
    search: str | None  # only listings matching this text
    tag: str | None  # only listings with this tag (``--filter``)
    sleep: Callable[[float], None] | None  # the waiting function (tests pass a fake)
    token: str | None  # instead of the host's variable (one of HF_TOKENS)
    budget: Budget | None  # a request budget shared with other workers
    names: Sequence[str] | None  # Ollama: the tags to read (it lists nothing)
    by_hash: bool | None  # Civitai: ask for the index's sha256s (``--by-hash``)
    hashes: Sequence[str] | None  # with by_hash: the sha256s to ask


def host_client(
    host: str, options: HostOptions, *, token: str | None, token_env: str
) -> HttpClient:
    """The HttpClient of a host built from ``options`` (rate, sleep, budget)."""
    return HttpClient(
        host,
        token=token,
        token_env=token_env,
        rate=options.get("rate"),
        sleep=options.get("sleep"),
        budget=options.get("budget"),
    )


@dataclass(frozen=True)
class Page:
    """One list response, decoded."""

    payload: Any  # decoded JSON of one response
    next_cursor: str | None  # opaque: a cursor value or a re-based next URL; None: last
    cursor: str | None = None  # the cursor this page was fetched with


class PageCounts(Protocol):
    """What ``Store.save_page`` reports for one page."""

    @property
    def new(self) -> int:
        """Listings the index did not have."""

    @property
    def changed(self) -> int:
        """Listings whose revision or status changed."""

    @property
    def unchanged(self) -> int:
        """Listings seen again as they were."""

    @property
    def files(self) -> int:
        """File occurrences written."""


class Store(Protocol):
    """The part of ``modelscan.db.store.Store`` the crawl loop uses."""

    def start_run(self, host: str, *, params: dict[str, object]) -> int:
        """Open a crawl run and take the host's lock (StoreError if held)."""

    def finish_run(self, run_id: int, *, status: str, stats: dict[str, int]) -> None:
        """Close a run and release the host's lock."""

    def load_cursor(self, host: str, key: str = "default") -> str | None:
        """Return the cursor saved with the last committed page."""

    def save_page(
        self,
        run_id: int,
        host: str,
        listings: Sequence[Listing],
        *,
        next_cursor: str | None,
        cursor_key: str | None = "default",
        seen_at: datetime,
    ) -> PageCounts:
        """Upsert the listings, write their events and save the cursor, atomically."""

    def known_revisions(
        self, host: str, host_ids: Sequence[str]
    ) -> dict[str, str | None]:
        """Return the stored revision of each listing the index holds as live."""

    def undated(self, host: str, host_ids: Sequence[str]) -> set[str]:
        """Return the listings held without the host's date (``published_at``)."""

    def mark_gone(
        self,
        host: str,
        host_id: str,
        *,
        at: datetime,
        status: str = "gone",
        run_id: int | None = None,
    ) -> None:
        """Mark a listing and its live files gone (never delete)."""

    def record_error(self, run_id: int, host: str, item: str, message: str) -> None:
        """Record one failed item of a run."""


@runtime_checkable
class SweepStore(Protocol):
    """A store that can list live listings not seen since a time (for gone checks)."""

    def unseen_since(self, host: str, since: datetime) -> list[str]:
        """Return host ids of live listings whose last_seen is before ``since``."""


class Host(Protocol):
    """One model host: a small class around pure ``parse_*`` functions."""

    name: ClassVar[str]
    client: HttpClient
    cursor_key: str  # "default", or a key naming the filters of a narrowed listing
    complete_listing: bool  # a finished pass saw every listing (no filters)

    def fetch_page(self, cursor: str | None, *, limit: int | None = None) -> Page:
        """Fetch one list page (network). ``limit`` caps the page size."""

    def parse_page(self, page: Page) -> Iterator[Listing | ItemError]:
        """Turn a page into listings (pure); a bad entry becomes an ItemError."""

    def needs_details(
        self, listing: Listing, known: bool, revision: str | None
    ) -> bool:
        """Whether ``listing`` must be completed by :meth:`fetch_details`."""

    def fetch_details(self, listing: Listing) -> Listing:
        """Complete a new or changed listing (files, versions) from the network.

        Returns the listing with ``status`` "gone"/"renamed" when the host says
        so; raises UnexpectedResponse for a bad answer about this one item.
        """

    def check(self, host_id: str) -> str | None:
        """Ask the host about a listing that no longer appears: its status or None."""


@dataclass
class CrawlStats:
    """Counters of one crawl run (``--json`` prints :meth:`as_dict`)."""

    host: str
    run_id: int | None = None
    status: str = "running"  # ok | failed
    pages: int = 0
    listings: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    files: int = 0
    details: int = 0  # listings completed with detail requests
    gone: int = 0
    errors: int = 0  # items that still failed after their second try (crawl_errors)
    retried: int = 0  # items that failed once and were tried again in this run
    unread: int = 0  # listings whose lineage files the host refused (gated)
    requests: int = 0
    deep_files: int = 0  # files fingerprinted remotely (crawl --deep)
    deep_skipped: int = 0  # named like weights, but not a model file
    deep_requests: int = 0  # Range requests those reads took
    deep_bytes: int = 0  # bytes they read
    deep_budget_spent: bool = False  # the run's deep budget ran out
    complete: bool = False  # reached the end of the host's listing
    seconds: float = 0.0
    error: str | None = None
    _started: float = field(default_factory=time.monotonic, repr=False)

    def counts(self) -> dict[str, int]:
        """Integer counters, as stored with the run."""
        keys = (
            "pages",
            "listings",
            "new",
            "changed",
            "unchanged",
            "files",
            "details",
            "gone",
            "errors",
            "retried",
            "unread",
            "requests",
            "deep_files",
            "deep_skipped",
            "deep_requests",
            "deep_bytes",
        )
        return {k: int(getattr(self, k)) for k in keys}

    def as_dict(self) -> dict[str, object]:
        """Everything, JSON-ready."""
        out: dict[str, object] = {
            "host": self.host,
            "run_id": self.run_id,
            "status": self.status,
        }
        out.update(self.counts())
        out.update(
            complete=self.complete, seconds=round(self.seconds, 3), error=self.error
        )
        return out

    def summary(self) -> str:
        """One line for a terminal."""
        text = (
            f"{self.host}: {self.status}, {self.listings} listings "
            f"({self.new} new, {self.changed} changed, {self.gone} gone), "
            f"{self.files} files, {self.requests} requests, {self.errors} errors, "
            f"{self.seconds:.1f}s"
        )
        if self.unread:
            text += f"; {self.unread} gated repos with lineage files unread"
        if self.deep_files or self.deep_skipped:
            text += (
                f"; deep: {self.deep_files} files fingerprinted remotely "
                f"({self.deep_requests} requests, {self.deep_bytes:,} bytes"
                f"{', budget spent' if self.deep_budget_spent else ''}), "
                f"{self.deep_skipped} not model files"
            )
        return text + (f": {self.error}" if self.error else "")


def crawl(
    host: Host,
    store: Store,
    *,
    max_pages: int | None = None,
    limit: int | None = None,
    full: bool = False,
    progress: Callable[[CrawlStats], None] | None = None,
    workers: int = 1,
    clock: Callable[[], datetime] = utcnow,
    stats: CrawlStats | None = None,
    deep: Deep | None = None,
) -> CrawlStats:
    """The only crawl loop: load state, fetch, parse, complete, save page + cursor.

    Args:
        host: the host to crawl.
        store: the index (``modelscan.db.engine.open_store()``).
        max_pages: stop after this many list pages.
        limit: stop after this many listings.
        full: ignore the saved cursor and start from the host's first page.
        progress: called with the running stats after each page and detail.
        workers: threads fetching details of changed listings in parallel.
        clock: source of timestamps.
        stats: counters to fill in (a caller keeps them when the crawl raises).
        deep: also fingerprint the listed model files remotely (``--deep``).

    Returns:
        The run's counters, also stored with the run.

    Raises:
        HostError: the host stayed down or kept refusing; pages committed
            before the failure stay committed and the next run resumes there.
        StoreError: another crawl of the host holds its lock, or the index failed.
    """
    params: dict[str, object] = {
        "max_pages": max_pages,
        "limit": limit,
        "full": full,
        "cursor_key": host.cursor_key,
        "deep": deep is not None,
    }
    stats = stats if stats is not None else CrawlStats(host=host.name)
    stats.host = host.name
    run_id = store.start_run(host.name, params=params)
    stats.run_id = run_id
    first_request = host.client.requests
    try:
        CrawlSteps(
            host, store, run_id, stats, progress, workers, clock, first_request, deep
        ).run(max_pages=max_pages, limit=limit, full=full)
        stats.status = "ok"
    except HostError as exc:
        stats.status = "failed"
        stats.error = host.client.redact(str(exc))
        raise
    finally:
        if stats.status == "running":
            stats.status = "failed"  # interrupted (KeyboardInterrupt, StoreError, bug)
        stats.requests = host.client.requests - first_request
        stats.seconds = time.monotonic() - stats._started
        store.finish_run(run_id, status=stats.status, stats=stats.counts())
    return stats


@dataclass
class CrawlSteps:
    """The steps of one run of :func:`crawl`, each usable alone.

    :func:`crawl` runs them in a loop in one process; the distributed crawl
    (:mod:`modelscan.distributed`) runs the same steps as separate tasks: list a
    page (:meth:`fetch_listings`, :meth:`split`, :meth:`save`), complete one
    listing (:meth:`complete`), and sweep after the last page (:meth:`sweep`).
    """

    host: Host
    store: Store
    run_id: int
    stats: CrawlStats
    progress: Callable[[CrawlStats], None] | None
    workers: int
    clock: Callable[[], datetime]
    first_request: int = 0  # the client's request count when the run began
    deep: Deep | None = None  # remote fingerprints of the listed files (--deep)
    consecutive_failures: int = 0  # detail fetches failed in a row, for the host stop

    def run(self, *, max_pages: int | None, limit: int | None, full: bool) -> None:
        """Crawl page after page from the saved cursor (or the first page)."""
        host = self.host
        cursor = None if full else self.store.load_cursor(host.name, host.cursor_key)
        if cursor is None:
            self.mark_pass_start()
        while max_pages is None or self.stats.pages < max_pages:
            remaining = None if limit is None else limit - self.stats.listings
            if remaining is not None and remaining <= 0:
                return
            cursor, more = self._one_page(cursor, remaining)
            if not more:
                return

    def _one_page(
        self, cursor: str | None, remaining: int | None
    ) -> tuple[str | None, bool]:
        """Fetch, parse, complete and save one page.

        Returns:
            The cursor to go on with, and whether to go on.
        """
        listings, next_cursor, cut = self.fetch_listings(cursor, remaining)
        parsed = len({item.host_id for item in listings})
        ready, todo = self.split(listings)
        done = dict(zip(todo, self.complete([listings[i] for i in todo]), strict=True))
        kept = [
            result
            for i, item in enumerate(listings)
            if (result := item if i in ready else done[i]) is not None
        ]
        self.save(kept, next_cursor, parsed)
        if self.deep is not None:
            read_files(self, self.deep, list(dict.fromkeys(i.host_id for i in kept)))
        if cut:
            return cursor, False
        if next_cursor is None:
            self.stats.complete = True
            self.sweep()
            return None, False
        return next_cursor, True

    def fetch_listings(
        self, cursor: str | None, remaining: int | None
    ) -> tuple[list[Listing], str | None, bool]:
        """Fetch and parse one list page, cut to ``remaining`` listings.

        Returns:
            The page's listings, the cursor to save with them, and whether the
            page was cut short by ``remaining`` (then the cursor stays on it).

        Raises:
            HostError: the page still fails after the client's retries (recorded).
        """
        try:
            page = self.host.fetch_page(cursor, limit=remaining)
            if cursor is not None and page.next_cursor == cursor:  # a loop forever
                raise UnexpectedResponse(
                    self.host.name, cursor, None, "the next page is this page again"
                )
        except HostError as exc:  # a list page we cannot read stops the run
            self.error(f"page {cursor or '(first)'}", exc)
            raise
        listings = self._parse(page)
        ids = list(dict.fromkeys(item.host_id for item in listings))
        if remaining is None or len(ids) <= remaining:
            return listings, page.next_cursor, False
        # Cut short by --limit (counted in host ids: one Civitai model may come as
        # several version listings). Keep the cursor on this page so the next run
        # sees the rest of it; re-saving the first ones is idempotent.
        keep = set(ids[:remaining])
        return [item for item in listings if item.host_id in keep], cursor, True

    def save(
        self, listings: list[Listing], next_cursor: str | None, parsed: int
    ) -> None:
        """Save listings and the page's cursor in one transaction; count them."""
        counts = self.store.save_page(
            self.run_id,
            self.host.name,
            listings,
            next_cursor=next_cursor,
            cursor_key=self.host.cursor_key,
            seen_at=self.clock(),
        )
        self._count(parsed, counts)

    def _parse(self, page: Page) -> list[Listing]:
        listings: list[Listing] = []
        for entry in self.host.parse_page(page):
            if isinstance(entry, ItemError):
                self.stats.errors += 1
                self.store.record_error(
                    self.run_id,
                    self.host.name,
                    entry.item,
                    self.host.client.redact(entry.message),
                )
            else:
                listings.append(entry)
        return listings

    def split(self, listings: list[Listing]) -> tuple[set[int], list[int]]:
        """Positions of listings ready to save as listed, and of those needing details.

        A listing needs details when the host says so for it: new to the index
        (or held as gone), or whose revision moved. A listing the index holds
        without a date, for which the host now gives one (rows crawled before
        the index kept ``published_at``), is completed again as if unknown, once.
        """
        todo = self.pending(listings)
        return set(range(len(listings))) - set(todo), todo

    def pending(self, listings: Sequence[Listing]) -> list[int]:
        """Positions of the listings that need details (see :meth:`split`)."""
        ids = list(dict.fromkeys(item.host_id for item in listings))
        known = self.store.known_revisions(self.host.name, ids) if ids else {}
        dated = [i.host_id for i in listings if i.published_at and i.host_id in known]
        for host_id in self.store.undated(self.host.name, dated) if dated else ():
            del known[host_id]
        return [
            i
            for i, item in enumerate(listings)
            if self.host.needs_details(
                item, item.host_id in known, known.get(item.host_id)
            )
        ]

    def complete(self, listings: list[Listing]) -> list[Listing | None]:
        """Fetch the details of ``listings``; None where there is nothing to save.

        An item whose details fail is tried once more after the others; if it
        fails again it is recorded in ``crawl_errors`` and gives None (the next
        run fetches it again). A listing the host reports gone is marked gone in
        the index (``Store.mark_gone``) and gives None.
        """
        done = self._fetch_all(listings)
        failed = [i for i, r in enumerate(done) if isinstance(r, HostError)]
        self.stats.retried += len(failed)
        for i, again in zip(
            failed, self._fetch_all([listings[i] for i in failed]), strict=True
        ):
            done[i] = again
        out: list[Listing | None] = []
        for item, result in zip(listings, done, strict=True):
            if isinstance(result, HostError):
                self.error(item.host_id, result)  # failed twice: retried next run
                out.append(None)
            elif result.status in GONE_STATUSES:
                self._gone(result.host_id, result.status)
                out.append(None)
            else:
                self.stats.unread += bool(result.extra.get("unread"))
                out.append(result)
        return out

    def _fetch_all(self, todo: list[Listing]) -> list[Listing | HostError]:
        """Run fetch_details over ``todo``; a failed item comes back as its error.

        Raises:
            RateLimited: the host wants every request to wait (not one item's fault).
            HostUnavailable: MAX_CONSECUTIVE_FAILURES items in a row failed.
        """

        def one(item: Listing) -> Listing | HostError:
            try:
                return self.host.fetch_details(item)
            except RateLimited:
                raise
            except HostError as exc:  # this item only; others go on
                return exc

        results: list[Listing | HostError] = []
        with ThreadPoolExecutor(max(1, self.workers)) as pool:
            answers = pool.map(one, todo) if self.workers > 1 else map(one, todo)
            for answer in answers:  # in order, as done
                results.append(answer)
                self._note_outcome(answer)
        return results

    def _note_outcome(self, answer: Listing | HostError) -> None:
        """Count one detail fetch; stop the host after too many failures in a row."""
        if isinstance(answer, HostError):
            self.consecutive_failures += 1
            if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                raise HostUnavailable(
                    self.host.name,
                    answer.url,
                    f"{self.consecutive_failures} items failed in a row, the last "
                    f"with: {self.host.client.redact(str(answer))}",
                ) from answer
            return
        self.consecutive_failures = 0
        self.stats.details += 1
        self.stats.requests = self.host.client.requests - self.first_request
        if self.progress is not None:
            self.progress(self.stats)

    def sweep(self) -> None:
        """After a complete pass, ask the host about listings the pass did not see."""
        if not self.host.complete_listing or not isinstance(self.store, SweepStore):
            return
        started = self.store.load_cursor(
            self.host.name, self.host.cursor_key + PASS_SUFFIX
        )
        if started is None:
            return
        for host_id in self.store.unseen_since(
            self.host.name, datetime.fromisoformat(started)
        ):
            try:
                status = self.host.check(host_id)
            except RateLimited:
                raise
            except HostError as exc:  # this repo only: asked again after the next pass
                self.error(host_id, exc)
                continue
            if status is not None and status != "live":
                self._gone(host_id, status)

    def mark_pass_start(self) -> None:
        """Remember when this full pass began, for the sweep at its end."""
        if not self.host.complete_listing:
            return
        now = self.clock()
        self.store.save_page(
            self.run_id,
            self.host.name,
            [],
            next_cursor=now.isoformat(),
            cursor_key=self.host.cursor_key + PASS_SUFFIX,
            seen_at=now,
        )

    def _gone(self, host_id: str, status: str) -> None:
        self.store.mark_gone(
            self.host.name, host_id, at=self.clock(), status=status, run_id=self.run_id
        )
        self.stats.gone += 1

    def error(self, item: str, exc: Exception) -> None:
        """Count and record one failed item (its message without the token)."""
        self.stats.errors += 1
        message = self.host.client.redact(str(exc))
        logger.warning("%s: %s: %s", self.host.name, item, message)
        self.store.record_error(self.run_id, self.host.name, item, message)

    def _count(self, saved: int, counts: PageCounts) -> None:
        s = self.stats
        s.requests = self.host.client.requests - self.first_request
        s.pages += 1
        s.listings += saved
        s.new += counts.new
        s.changed += counts.changed
        s.unchanged += counts.unchanged
        s.files += counts.files
        if self.progress is not None:
            self.progress(s)
