"""Options and helpers every command shares: ``--db``, ``--json``, the index, hints.

Commands take ``--db`` and ``--json`` through :func:`db_option` and
:func:`json_option`, open the index with :func:`open_index` (read-only when they
only read; closed when the command ends), and a failure's hint is chosen by its
exception type (:func:`hint_for`), never by matching its text.

Example:
    >>> @click.command()
    ... @db_option
    ... @json_option
    ... def info(db: str | None, as_json: bool) -> None:
    ...     with open_index(db, read_only=True) as store:
    ...         click.echo(store.row_counts())
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modelscan import errors

if TYPE_CHECKING:
    from modelscan.db.store import Store

F = TypeVar("F", bound=Callable[..., Any])
DB_HELP = (
    "Index URL (SQLAlchemy); default: MODELSCAN_DATABASE_URL or the "
    "SQLite file in the user data directory."
)
Hints = tuple[tuple[type[errors.ModelscanError], str], ...]
# Most specific first: the first class an exception is an instance of wins.
HINTS: Hints = (
    (errors.RateLimited, "lower --rate, or set the host's token"),
    (errors.HostUnavailable, "check the network, or the host's URL (--endpoint)"),
)
# A host failing in the middle of a crawl run (``modelscan crawl``): its list
# pages answer anonymously, so a refusal means the token; the run resumes.
CRAWL_HINTS: Hints = (
    (
        errors.AuthRequired,
        "the token in the host's variable is wrong or lacks access; "
        "unset it to crawl anonymously",
    ),
    (
        errors.HostUnavailable,
        "the host is down or unreachable: run again later, "
        "the crawl resumes where it stopped",
    ),
    *HINTS,
)


def db_option(fn: F) -> F:
    """Add ``--db URL`` (env ``MODELSCAN_DATABASE_URL``) as the ``db`` argument."""
    return click.option(
        "--db", envvar="MODELSCAN_DATABASE_URL", metavar="URL", help=DB_HELP
    )(fn)


def json_flag(help_text: str = "Print JSON.") -> Callable[[F], F]:
    """Return a decorator adding ``--json`` (with ``help_text``) as ``as_json``."""

    def add(fn: F) -> F:
        return click.option("--json", "as_json", is_flag=True, help=help_text)(fn)

    return add


json_option = json_flag()  # ``--json``: print JSON


@contextmanager
def open_index(db: str | None, *, read_only: bool = False) -> Iterator[Store]:
    """Open the index at ``db`` (default URL if None) and close it afterwards.

    Args:
        db: the ``--db`` value.
        read_only: open without migrating; the database refuses writes.

    Raises:
        StoreError: the index cannot be opened.
    """
    from modelscan.db.engine import open_store

    store = open_store(db, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def hint_for(exc: BaseException, hints: Hints = HINTS) -> str | None:
    """Return what the user can do about ``exc``, by its type; None if nothing.

    Args:
        exc: the failure.
        hints: the table to choose from (:data:`CRAWL_HINTS` during a crawl run).
    """
    for kind, hint in hints:
        if isinstance(exc, kind):
            return hint
    return None
