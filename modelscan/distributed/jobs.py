"""The distributed crawl's jobs: plain functions the Celery tasks call, one step each.

They run the very steps of the single-process crawl
(:class:`~modelscan.registry.base.CrawlSteps`) against the index, as separate
tasks that any worker may run:

- :func:`start`: open the run (and the host's lock) in the index, enqueue the
  first page.
- :func:`list_page`: fetch and parse one page; save the listings that need no
  details with the next cursor in one transaction; enqueue one details task per
  new or changed repo and the next page.
- :func:`complete_listing`: fetch one repo's details (tree, adapter lineage),
  retried once as inline, and save it.
- :func:`finish`: after the last task, sweep (a complete pass) and close the run.

Every job is idempotent: rows are upserts on natural keys, a page task that
finds its page listed does nothing, a details task whose revision the index
already holds does nothing, so a task redelivered after a worker died leaves the
same index. Tokens never travel in messages: each worker reads its own
(``HF_TOKENS``, or ``HF_TOKEN``; the same for the other hosts) and picks one per
item, so k tokens spread the work k ways; each token has one budget in Redis
shared by every worker (:mod:`modelscan.distributed.budget`).

Example:
    >>> run_id = start(spec, store, redis, enqueue)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modelscan.db.engine import open_store
from modelscan.db.store import Store
from modelscan.distributed.budget import DEFAULT_LIMITS, Limit, RedisBudget
from modelscan.distributed.state import RunState, index_prefix
from modelscan.errors import HostError, RateLimited, StoreError
from modelscan.records import LineageRef, Listing, RemoteFile
from modelscan.registry import make_host
from modelscan.registry.base import (
    MAX_CONSECUTIVE_FAILURES,
    CrawlStats,
    CrawlSteps,
    Host,
)
from modelscan.registry.deep import Deep, read_files
from modelscan.registry.parsing import utcnow

logger = logging.getLogger(__name__)

Enqueue = Callable[[str, list[Any], str], None]  # task name, arguments, queue
TOKEN_VARS = {  # host -> (variable of several tokens, variable of one)
    "huggingface": ("HF_TOKENS", "HF_TOKEN"),
    "civitai": ("CIVITAI_API_TOKENS", "CIVITAI_API_TOKEN"),
    "replicate": ("REPLICATE_API_TOKENS", "REPLICATE_API_TOKEN"),
}
FIRST_PAGE = "page:(first)"
LINK_LEASE = 6 * 3600  # seconds a link run may hold its lock before it is freed


@dataclass(frozen=True, slots=True)
class CrawlSpec:
    """What every task of one distributed crawl needs to rebuild its host.

    ``index`` is the digest prefix of the index URL the crawl was started on; a
    worker whose own index differs refuses the task (no URL or token travels).
    """

    host: str
    index: str
    queue: str = "modelscan"
    endpoint: str | None = None
    author: str | None = None
    search: str | None = None
    tag: str | None = None
    budget: str | None = None  # "N/SECONDS" for every bucket; None: the host's own
    full: bool = False
    deep: bool = False  # also fingerprint the listed model files remotely
    link: bool = False  # run `link` on the index once the crawl is done

    def to_json(self) -> dict[str, Any]:
        """The spec as a message argument."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CrawlSpec:
        """Read a spec from a message argument."""
        return cls(**data)


# --- listings in messages ------------------------------------------------------------


def listing_to_json(listing: Listing) -> dict[str, Any]:
    """A listing as JSON-ready values (datetimes as ISO 8601)."""
    data = dataclasses.asdict(listing)
    data["updated_at"] = listing.updated_at.isoformat() if listing.updated_at else None
    return data


def listing_from_json(data: dict[str, Any]) -> Listing:
    """The listing :func:`listing_to_json` wrote."""
    values = dict(data)
    when = values.get("updated_at")
    values["updated_at"] = datetime.fromisoformat(when) if when else None
    values["files"] = tuple(RemoteFile(**f) for f in values.get("files", ()))
    values["lineage"] = tuple(LineageRef(**r) for r in values.get("lineage", ()))
    return Listing(**values)


def page_key(cursor: str | None) -> str:
    """The task key of the page at ``cursor``."""
    return FIRST_PAGE if cursor is None else f"page:{cursor}"


def item_key(listing: Listing) -> str:
    """The task key of one repo's details."""
    return f"item:{listing.host_id}@{listing.revision}"


# --- per worker: tokens, hosts, the index -------------------------------------------


def tokens_for(host: str) -> list[str | None]:
    """The tokens this worker may use for ``host`` (a list of one None: anonymous).

    ``HF_TOKENS`` (and ``CIVITAI_API_TOKENS``, ``REPLICATE_API_TOKENS``) is a comma
    list, or the path of a file with one token a line; else the single token
    variable; else huggingface_hub's own token for the Hub.
    """
    many, one = TOKEN_VARS.get(host, ("", ""))
    value = os.environ.get(many, "").strip()
    if value and Path(value).is_file():
        value = ",".join(Path(value).read_text().split())
    tokens = [t.strip() for t in value.split(",") if t.strip()]
    if tokens:
        return list(tokens)
    single = os.environ.get(one) or None
    if single is None and host == "huggingface":
        from huggingface_hub import get_token

        single = get_token()
    return [single]


def pick_token(tokens: list[str | None], key: str) -> str | None:
    """The token that serves ``key``: the same one every time, spread evenly."""
    return tokens[zlib.crc32(key.encode()) % len(tokens)]


@dataclass
class Worker:
    """What one worker process keeps between tasks: its index, Redis, hosts.

    Args:
        db_url: the index (the worker's ``--db`` or ``MODELSCAN_DATABASE_URL``).
        redis: a ``redis.Redis`` client for budgets and run state.
        enqueue: sends a task (Celery's ``send_task`` in a worker).
        sleep: the waiting function of the HTTP clients (tests pass a fake).
    """

    db_url: str
    redis: Any
    enqueue: Enqueue
    sleep: Callable[[float], None] | None = None
    _store: Store | None = None
    _hosts: dict[tuple[str, str | None], Host] = dataclasses.field(default_factory=dict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def prefix(self) -> str:
        """This worker's index prefix in Redis."""
        return index_prefix(self.db_url)

    def store(self) -> Store:
        """The index, opened (and migrated) once per process."""
        with self._lock:
            if self._store is None:
                self._store = open_store(self.db_url)
            return self._store

    def host(self, spec: CrawlSpec, key: str) -> Host:
        """The host of ``spec`` with the token that serves ``key`` (built once)."""
        token = pick_token(tokens_for(spec.host), key)
        with self._lock:
            found = self._hosts.get((repr(spec), token))
            if found is None:
                limits = DEFAULT_LIMITS.get(spec.host, {})
                if spec.budget:
                    limit = Limit.parse(spec.budget)
                    limits = {"api": limit, "resolve": limit}
                budget = RedisBudget(self.redis, spec.host, token, limits,
                                     prefix=self.prefix)  # fmt: skip
                found = make_host(spec.host, endpoint=spec.endpoint,
                                  author=spec.author, search=spec.search,
                                  tag=spec.tag, sleep=self.sleep, token=token,
                                  budget=budget)  # fmt: skip
                self._hosts[(repr(spec), token)] = found
            return found

    def check(self, spec: CrawlSpec) -> None:
        """Refuse a task of a crawl started on another index.

        Raises:
            StoreError: the task's index is not this worker's.
        """
        if spec.index != self.prefix:
            raise StoreError(
                f"a task of another index ({spec.index}) reached a worker of "
                f"{self.prefix}: give workers and crawl the same --db"
            )

    def steps(self, spec: CrawlSpec, run_id: int, key: str) -> CrawlSteps:
        """The crawl steps of one task, with counters of their own."""
        host = self.host(spec, key)
        stats = CrawlStats(host=spec.host, run_id=run_id)
        deep = None
        if spec.deep:  # file reads: the host's resolves count in its resolver
            # bucket; the CDN's range requests (no /resolve/ in them) in none
            state = RunState(self.redis, self.prefix, run_id)
            own = host.client.budget
            limits = getattr(own, "limits", {})
            resolver = {k: v for k, v in limits.items() if k == "resolve"}
            files_budget = RedisBudget(self.redis, spec.host, host.client.token,
                                       resolver, prefix=self.prefix)  # fmt: skip
            deep = Deep.for_host(host.client, budget=files_budget,
                                 claim=state.claim_blob)  # fmt: skip
        return CrawlSteps(host, self.store(), run_id, stats, None, 1, utcnow,
                          host.client.requests, deep)  # fmt: skip


# --- the jobs -----------------------------------------------------------------------


def start(spec: CrawlSpec, worker: Worker) -> int:
    """Open a distributed run of ``spec.host`` and enqueue its first page.

    Raises:
        StoreError: another crawl of the host holds its lock.
    """
    store = worker.store()
    cursor_key = worker.host(spec, FIRST_PAGE).cursor_key
    params: dict[str, object] = {
        "distributed": True,
        "full": spec.full,
        "cursor_key": cursor_key,
    }
    run_id = store.start_run(spec.host, params=params, distributed=True)
    steps = worker.steps(spec, run_id, FIRST_PAGE)
    cursor = None if spec.full else store.load_cursor(spec.host, steps.host.cursor_key)
    if cursor is None:
        steps.mark_pass_start()
    state = RunState(worker.redis, worker.prefix, run_id)
    state.remember(spec.to_json())
    state.add([page_key(cursor)])
    worker.enqueue("modelscan.list_page", [spec.to_json(), run_id, cursor], spec.queue)
    return run_id


def list_page(spec: CrawlSpec, worker: Worker, run_id: int, cursor: str | None) -> None:
    """List one page: save what needs no details, enqueue the rest and the next page."""
    worker.check(spec)
    state, key = RunState(worker.redis, worker.prefix, run_id), page_key(cursor)
    if not state.listed(key) and state.failure() is None:
        steps = worker.steps(spec, run_id, key)
        try:
            _list(spec, worker, state, steps, cursor)
        except HostError as exc:  # the list page failed after its retries
            state.fail(steps.host.client.redact(str(exc)))
        finally:
            _count(state, steps)
        state.mark_listed(key)
    _finished(spec, worker, state, run_id, key)


def _list(
    spec: CrawlSpec,
    worker: Worker,
    state: RunState,
    steps: CrawlSteps,
    cursor: str | None,
) -> None:
    listings, next_cursor, _ = steps.fetch_listings(cursor, None)
    ready, todo = steps.split(listings)
    parsed = len({item.host_id for item in listings})
    saved = [item for i, item in enumerate(listings) if i in ready]
    steps.save(saved, next_cursor, parsed)
    if steps.deep is not None:
        read_files(steps, steps.deep, list(dict.fromkeys(i.host_id for i in saved)))
    children = [listings[i] for i in todo]
    state.add([item_key(item) for item in children]
              + ([page_key(next_cursor)] if next_cursor else []))  # fmt: skip
    for item in children:
        worker.enqueue("modelscan.complete_listing",
                       [spec.to_json(), steps.run_id, listing_to_json(item)],
                       spec.queue)  # fmt: skip
    if next_cursor is None:
        steps.stats.complete = True
    else:
        args = [spec.to_json(), steps.run_id, next_cursor]
        worker.enqueue("modelscan.list_page", args, spec.queue)


def complete_listing(
    spec: CrawlSpec, worker: Worker, run_id: int, data: dict[str, Any]
) -> None:
    """Fetch one repo's details and save it (nothing when the index has it already)."""
    worker.check(spec)
    listing = listing_from_json(data)
    state, key = RunState(worker.redis, worker.prefix, run_id), item_key(listing)
    steps = worker.steps(spec, run_id, key)
    store = worker.store()
    pending = bool(steps.pending([listing]))
    if pending and state.failure() is None:
        try:
            _complete(steps, state, store, listing)
        except RateLimited as exc:  # the host wants every request to wait
            state.fail(steps.host.client.redact(str(exc)))
        finally:
            _count(state, steps)
    _finished(spec, worker, state, run_id, key)


def _complete(
    steps: CrawlSteps, state: RunState, store: Store, listing: Listing
) -> None:
    (result,) = steps.complete([listing])
    if steps.stats.errors:
        if state.item_failed() >= MAX_CONSECUTIVE_FAILURES:
            state.fail(f"{MAX_CONSECUTIVE_FAILURES} items failed in a row")
        return
    state.item_done()
    if result is None:  # marked gone
        return
    counts = store.save_page(
        steps.run_id,
        steps.host.name,
        [result],
        next_cursor=None,
        cursor_key=None,
        seen_at=utcnow(),
    )
    if steps.deep is not None:
        read_files(steps, steps.deep, [result.host_id])
    stats = steps.stats
    stats.new += counts.new
    stats.changed += counts.changed
    stats.unchanged += counts.unchanged
    stats.files += counts.files


def finish(spec: CrawlSpec, worker: Worker, run_id: int) -> None:
    """Close the run: sweep after a complete pass, then status and counts."""
    worker.check(spec)
    state = RunState(worker.redis, worker.prefix, run_id)
    if state.closed() is not None:
        return
    failure = state.failure()
    counts = state.counts()
    if failure is None and counts.get("complete"):
        steps = worker.steps(spec, run_id, FIRST_PAGE)
        steps.sweep()
        _count(state, steps)
        counts = state.counts()
    status = "failed" if failure else "ok"
    worker.store().finish_run(run_id, status=status, stats=counts)
    if spec.link:  # before the close, so a waiter sees the run end after it
        run_link(spec, worker)
    state.close(status)


def run_link(spec: CrawlSpec, worker: Worker) -> None:
    """Run the incremental ``link`` over the index, one worker of the index at once.

    Another worker linking the same index (a crawl of another host finishing)
    makes this one a no-op: link is incremental, and that run or the next takes
    in what this crawl added.
    """
    from modelscan.lineage.infer import link

    worker.check(spec)
    key = f"{worker.prefix}:linking"
    if not worker.redis.set(key, 1, nx=True, ex=LINK_LEASE):
        return
    try:
        link(worker.store())
    finally:
        worker.redis.delete(key)


def _count(state: RunState, steps: CrawlSteps) -> None:
    """Add one task's counters (and requests) to the run's."""
    stats = steps.stats
    stats.requests = steps.host.client.requests - steps.first_request
    steps.first_request = steps.host.client.requests
    state.add_counts({**stats.counts(), "complete": int(stats.complete)})


def _finished(
    spec: CrawlSpec, worker: Worker, state: RunState, run_id: int, key: str
) -> None:
    """Remove the task from the run; the last one enqueues the finish."""
    if state.finish(key) and state.claim_finish():
        worker.enqueue("modelscan.finish", [spec.to_json(), run_id], spec.queue)
