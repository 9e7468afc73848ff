"""Fakes for crawl-loop tests: an in-memory Store and a Host of numbered listings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from modelscan.errors import (
    HostUnavailable,
    RateLimited,
    StoreError,
    UnexpectedResponse,
)
from modelscan.records import Listing, RemoteFile
from modelscan.registry.base import Page
from modelscan.registry.http import HttpClient
from modelscan.registry.parsing import ItemError

NOT_LIVE = frozenset({"gone", "taken_down", "archived", "private", "renamed"})


@dataclass(frozen=True)
class Counts:
    new: int
    changed: int
    unchanged: int
    files: int


@dataclass
class FakeStore:
    """The Store protocol in memory, with the semantics the crawl loop relies on."""

    repos: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    files: dict[tuple[str, str], dict[str, RemoteFile]] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    cursors: dict[tuple[str, str], str | None] = field(default_factory=dict)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: list[tuple[int, str, str, str]] = field(default_factory=list)
    locks: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    fail_after_pages: int | None = None  # simulate the process dying at a commit

    def start_run(self, host: str, *, params: dict[str, object]) -> int:
        if host in self.locks:
            raise StoreError(f"another crawl of {host} is running")
        run_id = len(self.runs) + 1
        self.runs[run_id] = {"host": host, "params": params, "status": "running"}
        self.locks[host] = run_id
        return run_id

    def finish_run(self, run_id: int, *, status: str, stats: dict[str, int]) -> None:
        self.runs[run_id].update(status=status, stats=stats)
        self.locks.pop(self.runs[run_id]["host"], None)

    def load_cursor(self, host: str, key: str = "default") -> str | None:
        return self.cursors.get((host, key))

    def save_page(
        self,
        run_id: int,
        host: str,
        listings: Sequence[Listing],
        *,
        next_cursor: str | None,
        cursor_key: str | None = "default",
        seen_at: datetime,
    ) -> Counts:
        if self.fail_after_pages is not None and self.pages >= self.fail_after_pages:
            raise KeyboardInterrupt("simulated kill before this page's commit")
        new = changed = unchanged = 0
        merged: dict[str, list[Listing]] = {}
        for listing in listings:
            merged.setdefault(listing.host_id, []).append(listing)
        for host_id, group in merged.items():
            head, key = group[0], (host, host_id)
            old = self.repos.get(key)
            files = {f.path: f for item in group for f in item.files}
            if old is None:
                new += 1
                self.events.append((host_id, "appeared", head.status))
            elif old["revision"] != head.revision or old["status"] != head.status:
                changed += 1
                kind = head.status if head.status in NOT_LIVE else "changed"
                self.events.append((host_id, kind, head.status))
            else:
                unchanged += 1
            if files or old is None or old["revision"] != head.revision:
                self.files[key] = files
            self.repos[key] = {
                "listing": head,
                "revision": head.revision,
                "status": head.status,
                "published_at": head.published_at or (old or {}).get("published_at"),
                "last_seen": seen_at,
                "lineage": {ref for item in group for ref in item.lineage},
            }
        if cursor_key is not None:
            self.cursors[(host, cursor_key)] = next_cursor
        self.pages += 1
        return Counts(new, changed, unchanged, sum(len(x.files) for x in listings))

    def known_revisions(
        self, host: str, host_ids: Sequence[str]
    ) -> dict[str, str | None]:
        return {
            i: self.repos[(host, i)]["revision"]
            for i in host_ids
            if (host, i) in self.repos
            and self.repos[(host, i)]["status"] not in NOT_LIVE
        }

    def undated(self, host: str, host_ids: Sequence[str]) -> set[str]:
        return {
            i
            for i in host_ids
            if (host, i) in self.repos
            and self.repos[(host, i)].get("published_at") is None
        }

    def mark_gone(
        self,
        host: str,
        host_id: str,
        *,
        at: datetime,
        status: str = "gone",
        run_id: int | None = None,
    ) -> None:
        repo = self.repos.get((host, host_id))
        if repo is None or repo["status"] == status:
            return
        repo["status"] = status
        self.events.append((host_id, status, status))

    def record_error(self, run_id: int, host: str, item: str, message: str) -> None:
        self.errors.append((run_id, host, item, message))

    def unseen_since(self, host: str, since: datetime) -> list[str]:
        return [
            i
            for (h, i), r in self.repos.items()
            if h == host and r["status"] not in NOT_LIVE and r["last_seen"] < since
        ]

    def status(self, host: str, host_id: str) -> str:
        return str(self.repos[(host, host_id)]["status"])

    def ids(self, host: str) -> set[str]:
        return {i for h, i in self.repos if h == host}


# --- a fake host for crawl-loop tests ------------------------------------------------


@dataclass
class FakeHost:
    """Pages of numbered listings; faults chosen per test."""

    name: ClassVar[str] = "fake"
    client: HttpClient
    pages: list[list[str]]
    revisions: dict[str, str] = field(default_factory=dict)
    cursor_key: str = "default"
    complete_listing: bool = True
    bad_details: set[str] = field(default_factory=set)
    flaky_details: set[str] = field(default_factory=set)  # fail on their first fetch
    limited_details: set[str] = field(default_factory=set)  # answer 429 for too long
    gone_details: set[str] = field(default_factory=set)
    down_at_page: int | None = None
    checked: dict[str, str] = field(default_factory=dict)
    fetched: list[int] = field(default_factory=list)
    detailed: list[str] = field(default_factory=list)

    def fetch_page(self, cursor: str | None, *, limit: int | None = None) -> Page:
        index = int(cursor or 0)
        self.client.throttle()
        if self.down_at_page == index:
            from modelscan.errors import HostUnavailable

            raise HostUnavailable("fake", f"fake://{index}", "HTTP 503 after retries")
        self.fetched.append(index)
        nxt = str(index + 1) if index + 1 < len(self.pages) else None
        return Page(self.pages[index], nxt, cursor)

    def parse_page(self, page: Page) -> Iterator[Listing | ItemError]:
        for item in page.payload:
            if item.startswith("bad"):
                yield ItemError(item, "entry without 'id'")
                continue
            yield Listing(
                host="fake",
                host_id=item,
                name=item,
                owner=None,
                url=f"fake://{item}",
                revision=self.revisions.get(item, "r1"),
                updated_at=None,
            )

    def needs_details(
        self, listing: Listing, known: bool, revision: str | None
    ) -> bool:
        return not known or revision != listing.revision

    def fetch_details(self, listing: Listing) -> Listing:
        self.client.throttle()
        self.detailed.append(listing.host_id)
        if listing.host_id in self.bad_details:
            raise UnexpectedResponse(
                "fake", f"fake://{listing.host_id}", 200, "truncated"
            )
        if listing.host_id in self.flaky_details:
            self.flaky_details.discard(listing.host_id)
            raise HostUnavailable("fake", f"fake://{listing.host_id}", "reset")
        if listing.host_id in self.limited_details:
            raise RateLimited("fake", f"fake://{listing.host_id}", 3600.0)
        if listing.host_id in self.gone_details:
            from modelscan.registry.parsing import replace

            return replace(listing, status="gone")
        from modelscan.registry.parsing import replace

        file = RemoteFile(path="w.bin", size=1, sha256=None, url="fake://w")
        return replace(listing, files=(file,))

    def check(self, host_id: str) -> str | None:
        return self.checked.get(host_id, "live")
