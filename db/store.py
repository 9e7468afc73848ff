"""The Store: every read and write of the index goes through its methods.

Each method is one transaction. Writers on SQLite start with ``BEGIN IMMEDIATE``
and wait for each other (busy timeout); transient conflicts (PostgreSQL
deadlocks and serialization failures, a unique key raced by another process)
are retried a few times. Database failures surface as one-line
:class:`~modelscan.errors.StoreError`; writes through a read-only store raise
:class:`~modelscan.errors.ReadOnlyViolation`.

Example:
    >>> store = open_store()  # doctest: +SKIP
    >>> for m in store.find("8ACE1E2C5D"):  # doctest: +SKIP
    ...     print(m.kind, m.host, m.repo, m.path, m.status)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from modelscan.db import counters, fingerprints, lookup, pages, runs
from modelscan.db.engine import WRITE_OPTION, hide_password
from modelscan.db.lineage_store import LineageRows
from modelscan.db.lookup import HashQuery, Match
from modelscan.db.pages import PageCounts
from modelscan.db.runs import RunInfo
from modelscan.db.tables import TABLES
from modelscan.errors import ReadOnlyViolation, StoreError
from modelscan.records import Fingerprint, Listing

__all__ = ["Match", "PageCounts", "RunInfo", "Store"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
RETRIES = 5
_RETRY_SQLSTATES = {"40001", "40P01", "23505"}  # serialization, deadlock, unique race
_READ_ONLY_SQLSTATE = "25006"


def _aware(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise StoreError(
            f"naive timestamp {at.isoformat()}: pass a timezone-aware UTC time"
        )
    return at.astimezone(UTC)


def is_read_only_error(exc: BaseException) -> bool:
    """Tell whether the database refused a statement because it would write."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(orig, "sqlstate", None) == _READ_ONLY_SQLSTATE:
        return True
    text = str(orig).lower()
    return "readonly database" in text or "read-only transaction" in text


def _retryable(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:  # the server dropped a pooled connection
        return True
    if getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (of the DBAPI error if any)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Store(LineageRows):
    """The index on one database (open it with ``open_store``).

    Lineage and spread loads and saves come from :class:`LineageRows`.
    """

    def __init__(self, engine: Engine, *, url: str, read_only: bool = False) -> None:
        self.engine = engine
        self.url = url
        self.read_only = read_only

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"Store({hide_password(self.url)!r}{mode})"

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ---------------------------------------------------------------

    def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction, retrying transient conflicts."""
        for attempt in range(RETRIES + 1):
            try:
                with self.engine.connect() as conn:
                    conn.execution_options(**{WRITE_OPTION: True})
                    with conn.begin():
                        return fn(conn)
            except DBAPIError as exc:
                if is_read_only_error(exc):
                    raise ReadOnlyViolation(
                        f"the index at {hide_password(self.url)} is open read-only: "
                        f"{first_line(exc)}"
                    ) from exc
                if attempt < RETRIES and _retryable(exc):
                    logger.debug("retrying after %s", first_line(exc))
                    time.sleep(random.uniform(0.01, 0.05) * 2**attempt)
                    continue
                if isinstance(exc, OperationalError):
                    raise StoreError(
                        f"index {hide_password(self.url)}: {first_line(exc)}"
                    ) from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot)."""
        for attempt in range(2):
            try:
                with self.engine.connect() as conn, conn.begin():
                    return fn(conn)
            except DBAPIError as exc:
                if attempt == 0 and exc.connection_invalidated:
                    continue
                if isinstance(exc, OperationalError):
                    where = hide_password(self.url)
                    raise StoreError(f"index {where}: {first_line(exc)}") from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # --- fingerprints and lookups --------------------------------------------------

    def save_fingerprint(
        self,
        fp: Fingerprint,
        *,
        location: str,
        host: str = "local",
        seen_at: datetime | None = None,
        repo: str | None = None,
    ) -> int:
        """Save a fingerprint (blob, tensors, claims) and one occurrence of it.

        Args:
            fp: what the scanner computed.
            location: where the file is; for host "local" made absolute.
            host: "local", or the host the file was fetched from.
            seen_at: when (default now).
            repo: the repo's host id; default: the directory of ``location``.

        Returns:
            The id of the occurrence row (``files.id``). Saving the same file
            again returns the same id and only refreshes ``last_seen``.
        """
        at = _aware(seen_at)
        return self._write(
            lambda c: fingerprints.save_fingerprint(
                c, fp, location=location, host=host, seen_at=at, repo=repo
            )
        )

    def find(self, query: str) -> list[Match]:
        """Return every occurrence of the file a hash names (see ``db/lookup.py``).

        Exact-hash matches come first, then occurrences with the same
        ``content_id``, then the same ``weights_id``.

        Raises:
            StoreError: the query is not a hash in a known spelling.
        """
        queries = lookup.parse_query(query)
        return self._read(lambda c: lookup.expand(c, lookup.resolve(c, queries)))

    def find_fingerprint(self, fp: Fingerprint) -> list[Match]:
        """Like :meth:`find`, starting from a fingerprint computed from a file."""
        q = [HashQuery("sha256", "sha256", fp.sha256.lower())]
        cids = [fp.content_id] if fp.content_id else []
        wids = [fp.weights_id] if fp.weights_id else []
        return self._read(
            lambda c: lookup.expand(
                c, lookup.resolve(c, q), content_ids=cids, weights_ids=wids
            )
        )

    def save_blob_fingerprint(self, fp: Fingerprint, *, seen_at: datetime) -> int:
        """Save a fingerprint of a blob the index lists already (a deep crawl)."""
        at = _aware(seen_at)
        return self._write(lambda c: fingerprints.save_blob_fingerprint(c, fp, at))

    def files_to_fingerprint(
        self, host: str, host_ids: Sequence[str], suffixes: tuple[str, ...]
    ) -> list[tuple[str, str, int | None, str]]:
        """Live files of these repos whose blob has no fingerprint (one per sha256)."""
        return self._read(
            lambda c: fingerprints.files_to_fingerprint(c, host, host_ids, suffixes)
        )

    # --- crawling --------------------------------------------------------------------

    def start_run(
        self, host: str, *, params: dict[str, object], distributed: bool = False
    ) -> int:
        """Record a crawl run of ``host`` and take its lock; return the run id.

        A ``distributed`` run's lock is held by its workers' heartbeats, not by
        the process that started it (which may exit).

        Raises:
            StoreError: another crawl of ``host`` is running.
        """
        return self._write(
            lambda c: runs.start_run(c, host, params=params, distributed=distributed)
        )

    def finish_run(self, run_id: int, *, status: str, stats: dict[str, int]) -> None:
        """Close a run with its status and counts, releasing the host lock."""
        self._write(lambda c: runs.finish_run(c, run_id, status=status, stats=stats))

    def release_lock(self, host: str) -> int | None:
        """Remove the crawl lock of ``host``; return the run that held it."""
        return self._write(lambda c: runs.release_lock(c, host))

    def load_cursor(self, host: str, key: str = "default") -> str | None:
        """Return the cursor saved with the last committed page of ``host``."""
        return self._read(lambda c: runs.load_cursor(c, host, key))

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
        """Upsert a page of listings and its events, save the cursor: one transaction.

        ``cursor_key=None`` saves the listings only (one repo completed apart from
        its page, in a distributed crawl).

        Raises:
            StoreError: ``run_id`` no longer holds the lock of ``host``.
        """
        at = _aware(seen_at)
        return self._write(
            lambda c: pages.save_page(
                c,
                run_id,
                host,
                listings,
                next_cursor=next_cursor,
                cursor_key=cursor_key,
                seen_at=at,
            )
        )

    def known_revisions(
        self, host: str, host_ids: Sequence[str]
    ) -> dict[str, str | None]:
        """Return {host_id: revision} for the repos the index knows."""
        return self._read(lambda c: pages.known_revisions(c, host, host_ids))

    def undated(self, host: str, host_ids: Sequence[str]) -> set[str]:
        """Return the host ids of the repos held without the host's date."""
        return self._read(lambda c: pages.undated(c, host, host_ids))

    def recount(self) -> dict[str, int]:
        """Rebuild the rank counters from the occurrences; return rows per table."""
        return self._write(counters.recount)

    def mark_gone(
        self,
        host: str,
        host_id: str,
        *,
        at: datetime,
        status: str = "gone",
        run_id: int | None = None,
    ) -> None:
        """Mark a repo and its live files gone or taken down (never deletes)."""
        when = _aware(at)
        self._write(
            lambda c: pages.mark_gone(
                c, host, host_id, at=when, status=status, run_id=run_id
            )
        )

    def unseen_since(self, host: str, since: datetime) -> list[str]:
        """Return host ids of live repos not seen since ``since`` (the gone sweep)."""
        when = _aware(since)
        return self._read(lambda c: pages.unseen_since(c, host, when))

    def record_error(self, run_id: int, host: str, item: str, message: str) -> None:
        """Record one item a crawl could not process."""
        self._write(lambda c: runs.record_error(c, run_id, host, item, message))

    def runs(self, host: str | None = None, limit: int = 20) -> list[RunInfo]:
        """Return the latest crawl runs, newest first."""
        return self._read(lambda c: runs.recent(c, host, limit))

    # --- introspection ---------------------------------------------------------------

    def row_counts(self) -> dict[str, int]:
        """Return the number of rows of every table."""

        def count(conn: Connection) -> dict[str, int]:
            return {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in TABLES
            }

        return self._read(count)

    def execute(self, fn: Callable[[Connection], Any], *, write: bool = False) -> Any:
        """Run ``fn(connection)`` in one transaction (for tests and tools)."""
        return self._write(fn) if write else self._read(fn)
