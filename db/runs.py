"""Crawl bookkeeping in the index: runs, the per-host lock, cursors, errors.

One crawl per host at a time: :func:`start_run` takes a lock row in
``crawl_locks`` (owner pid and machine, heartbeat refreshed with every saved
page). A lock is stale when its heartbeat is older than :data:`LOCK_STALE_AFTER`
or when its owner process, on this machine, no longer runs (a SIGKILLed crawl
can be restarted at once). The lock lives in the index, so it also holds
between machines sharing one PostgreSQL database.

Example:
    >>> run_id = start_run(conn, "civitai", params={"limit": 100})  # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from modelscan.db.tables import ERRORS, HOSTS, LOCKS, RUNS, STATE
from modelscan.db.upsert import upsert
from modelscan.errors import StoreError
from modelscan.hostinfo import host_info

LOCK_STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One crawl run as ``modelscan crawl --runs`` shows it."""

    id: int
    host: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    params: dict[str, Any]
    stats: dict[str, Any]
    errors: int


def now() -> datetime:
    """Return the current UTC time."""
    return datetime.now(UTC)


def ensure_host(conn: Connection, host: str, at: datetime) -> None:
    """Insert the host row if it is missing; set its operator and country.

    The operator and country come from modelscan/hostinfo.py (the built-in table
    and the user's hosts.toml), so the views can count jurisdictions.
    """
    info = host_info(host)
    row = {
        "name": host,
        "first_seen": at,
        "operator": info.operator,
        "country": info.country,
    }
    upsert(conn, HOSTS, [row], key=["name"], update=["operator", "country"])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped by its parent is a zombie: it is not running
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


DISTRIBUTED_PREFIX = "workers via "  # machine of a distributed run's lock


def _is_stale(lock: Any, at: datetime) -> bool:
    if at - lock.heartbeat_at > LOCK_STALE_AFTER:
        return True
    return lock.machine == socket.gethostname() and not _pid_alive(lock.pid)


def start_run(
    conn: Connection,
    host: str,
    *,
    params: dict[str, object],
    distributed: bool = False,
) -> int:
    """Record a new run of ``host`` and take the host's crawl lock.

    A distributed run's lock names no local process (its workers run anywhere and
    keep it with their heartbeats), so it is stale only when they stop beating.

    Raises:
        StoreError: another live crawl of the same host holds the lock.
    """
    at = now()
    ensure_host(conn, host, at)
    machine, pid = socket.gethostname(), os.getpid()
    if distributed:
        machine = f"{DISTRIBUTED_PREFIX}{machine}"
    run_id: int = conn.execute(
        insert(RUNS).returning(RUNS.c.id),
        {
            "host": host,
            "started_at": at,
            "status": "running",
            "params": params,
            "pid": pid,
            "machine": machine,
        },
    ).scalar_one()
    lock = {
        "host": host,
        "run_id": run_id,
        "pid": pid,
        "machine": machine,
        "started_at": at,
        "heartbeat_at": at,
    }
    upsert(conn, LOCKS, [lock], key=["host"])  # DO NOTHING when held
    holder = conn.execute(
        select(LOCKS).where(LOCKS.c.host == host).with_for_update()
    ).one()
    if holder.run_id == run_id:
        return run_id
    if not _is_stale(holder, at):
        raise StoreError(
            f"another crawl of {host} is running since "
            f"{holder.started_at:%Y-%m-%d %H:%M} UTC (run {holder.run_id}, pid "
            f"{holder.pid} on {holder.machine}); wait for "
            f"it, or if it is dead remove its lock with `modelscan db unlock {host}`"
        )
    conn.execute(
        update(RUNS)
        .where(RUNS.c.id == holder.run_id, RUNS.c.status == "running")
        .values(status="abandoned", finished_at=at)
    )
    conn.execute(update(LOCKS).where(LOCKS.c.host == host).values(**lock))
    return run_id


def heartbeat(conn: Connection, run_id: int, host: str) -> None:
    """Refresh the lock of ``run_id``.

    Raises:
        StoreError: the run no longer holds the lock of ``host``.
    """
    done = conn.execute(
        update(LOCKS)
        .where(LOCKS.c.host == host, LOCKS.c.run_id == run_id)
        .values(heartbeat_at=now())
    )
    if done.rowcount != 1:
        raise StoreError(
            f"crawl run {run_id} no longer holds the lock of {host} (it was found "
            "stale and taken over, or removed): stop this crawl and start a new one"
        )


def finish_run(
    conn: Connection, run_id: int, *, status: str, stats: dict[str, int]
) -> None:
    """Close ``run_id`` and release its host lock if it still holds it."""
    conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(status=status, stats=stats, finished_at=now())
    )
    conn.execute(delete(LOCKS).where(LOCKS.c.run_id == run_id))


def release_lock(conn: Connection, host: str) -> int | None:
    """Remove the lock of ``host`` whoever holds it; return the run that held it."""
    run_id = conn.execute(select(LOCKS.c.run_id).where(LOCKS.c.host == host)).scalar()
    if run_id is not None:
        conn.execute(delete(LOCKS).where(LOCKS.c.host == host))
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id, RUNS.c.status == "running")
            .values(status="abandoned", finished_at=now())
        )
    return run_id


def load_cursor(conn: Connection, host: str, key: str) -> str | None:
    """Return the cursor saved with the last committed page, or None."""
    stmt = select(STATE.c.cursor).where(STATE.c.host == host, STATE.c.key == key)
    cursor: str | None = conn.execute(stmt).scalar()
    return cursor


def save_cursor(
    conn: Connection,
    host: str,
    key: str,
    cursor: str | None,
    run_id: int | None,
    *,
    at: datetime | None = None,
) -> None:
    """Store ``cursor`` (None: the listing is complete) for ``host`` and ``key``.

    Also keeps other incremental jobs' state (``link``'s watermark, no run).
    """
    row = {
        "host": host,
        "key": key,
        "cursor": cursor,
        "run_id": run_id,
        "updated_at": at or now(),
    }
    upsert(
        conn,
        STATE,
        [row],
        key=["host", "key"],
        update=["cursor", "run_id", "updated_at"],
    )


def record_error(
    conn: Connection, run_id: int, host: str, item: str, message: str
) -> None:
    """Store one failed item of a run."""
    conn.execute(
        insert(ERRORS),
        {"run_id": run_id, "host": host, "item": item, "message": message, "at": now()},
    )


def recent(conn: Connection, host: str | None, limit: int) -> list[RunInfo]:
    """Return the latest runs, newest first."""
    from sqlalchemy import func

    errors = (
        select(func.count())
        .select_from(ERRORS)
        .where(ERRORS.c.run_id == RUNS.c.id)
        .scalar_subquery()
    )
    stmt = select(RUNS, errors.label("errors")).order_by(RUNS.c.id.desc()).limit(limit)
    if host is not None:
        stmt = stmt.where(RUNS.c.host == host)
    return [
        RunInfo(
            r.id,
            r.host,
            r.started_at,
            r.finished_at,
            r.status,
            r.params or {},
            r.stats or {},
            r.errors,
        )
        for r in conn.execute(stmt)
    ]
