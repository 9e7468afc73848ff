"""Open the index: URL resolution, engines tuned per dialect, automatic migration.

SQLite is the default, in the user data directory, with WAL, foreign keys and a
busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so concurrent
writers queue instead of failing. Any SQLAlchemy URL works through ``--db`` or
``MODELSCAN_DATABASE_URL``; PostgreSQL (psycopg 3) is the scale target.

Example:
    >>> store = open_store("sqlite:///index.sqlite")  # doctest: +SKIP
    >>> store.find("85114A0D")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import math
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from modelscan.errors import StoreError

if TYPE_CHECKING:
    from modelscan.db.store import Store

ENV_VAR = "MODELSCAN_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_S = 60.0  # writers wait this long for the lock before failing
SQLITE_CACHE_KIB = 64 * 1024  # per connection
SQLITE_MMAP_BYTES = 256 << 20
# Pages the write-ahead log may hold before a commit copies them into the file.
# SQLite's 1000 (4 MB) made every saved page of a large index pay a checkpoint
# of its scattered counter rows; 10,000 (40 MB) lets a page rewritten by many
# commits be copied once (README, "Index benchmark").
SQLITE_WAL_AUTOCHECKPOINT = 10_000
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
WRITE_OPTION = "modelscan_write"  # execution option: begin with BEGIN IMMEDIATE


def default_url() -> str:
    """Return ``MODELSCAN_DATABASE_URL``, or a SQLite file in the user data dir."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    from platformdirs import user_data_dir

    return f"sqlite:///{Path(user_data_dir('modelscan')) / 'index.sqlite'}"


def parse_url(url: str) -> URL:
    """Parse and check a database URL; raise StoreError naming what is wrong."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"not a database URL: {url!r}; give e.g. sqlite:///index.sqlite"
        ) from exc
    if parsed.get_backend_name() not in SUPPORTED_DIALECTS:
        raise StoreError(
            f"unsupported database {parsed.get_backend_name()!r} in "
            f"{hide_password(url)}: use sqlite:/// or postgresql+psycopg://"
        )
    return parsed


def hide_password(url: str | URL) -> str:
    """Render a URL with its password replaced by ``***``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparsable URL>"
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """Return the file of a SQLite URL, or None for an in-memory database."""
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:":
        return None
    if db.startswith("file:"):
        return None
    return Path(db)


def _jsonable(value: Any) -> Any:
    """Make metadata storable as strict JSON (PostgreSQL refuses NaN and bytes)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def dumps_json(value: Any) -> str:
    """Serialize a JSON column value (non-finite floats and bytes become strings)."""
    return json.dumps(_jsonable(value), ensure_ascii=False, allow_nan=False)


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """Create an engine with the index's connection settings.

    Args:
        url: any supported SQLAlchemy URL.
        read_only: open so that the database connection itself refuses writes
            (SQLite ``mode=ro``; PostgreSQL read-only transactions).

    Returns:
        The engine; nothing is connected yet.

    Raises:
        StoreError: unsupported or malformed URL, or a missing read-only file.
    """
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed, read_only=read_only)
        return _postgres_engine(parsed, read_only=read_only)
    except NoSuchModuleError as exc:
        raise StoreError(f"no driver for {hide_password(parsed)}: {exc}") from exc


def _sqlite_engine(url: URL, *, read_only: bool) -> Engine:
    path = sqlite_path(url)
    connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    if read_only and path is not None:
        if not path.exists():
            raise StoreError(
                f"no index at {path}: create it with `modelscan db upgrade`"
            )
        # mode=ro is enforced by SQLite; unlike PRAGMA query_only, the SQL being
        # run cannot switch it off.
        url = url.set(
            database=f"{path.absolute().as_uri()}?mode=ro", query={"uri": "true"}
        )
    elif path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args=connect_args, json_serializer=dumps_json)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module (SQLAlchemy's documented
        # recipe), so BEGIN IMMEDIATE can be issued for writers.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys = ON")
        # The default 2 MB page cache thrashes once the indexes pass a few million
        # rows; memory-mapped reads save a system call per page.
        cur.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cur.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
        if read_only:
            # mode=ro covers the main file only: ATTACH would open (and create) another
            # file read-write, so allow no attached databases at all.
            dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            cur.execute("PRAGMA query_only = ON")
        elif path is not None:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")  # WAL: durable against crashes
            cur.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_WAL_AUTOCHECKPOINT}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write and not read_only else "BEGIN")

    return engine


def _postgres_engine(url: URL, *, read_only: bool) -> Engine:
    # No pool_pre_ping: it costs a round trip per transaction; a connection the
    # server dropped is invalidated on first use and the Store retries once.
    engine = create_engine(url, json_serializer=dumps_json, pool_recycle=3600)
    if read_only:

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_conn.commit()

    return engine


def open_store(url: str | None = None, *, read_only: bool = False) -> Store:
    """Open the index at ``url`` (default: :func:`default_url`), migrating it first.

    Args:
        url: SQLAlchemy URL; None uses ``MODELSCAN_DATABASE_URL`` or the default
            SQLite file, whose parent directory is created.
        read_only: open without migrating; writes are refused by the database.

    Returns:
        A :class:`~modelscan.db.store.Store`.

    Raises:
        StoreError: bad URL, unreachable server, or a schema this version of
            modelscan does not know.
    """
    from modelscan.db.migrate import ensure_schema
    from modelscan.db.store import Store

    url = url or default_url()
    engine = make_engine(url, read_only=read_only)
    ensure_schema(engine, upgrade=not read_only)
    return Store(engine, url=url, read_only=read_only)
