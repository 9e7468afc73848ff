"""The crawl spread over Celery workers that share one index and one budget per token.

:func:`enqueue_crawl` opens a run and enqueues its first page; workers
(``modelscan worker``) do the rest (:mod:`modelscan.distributed.jobs`);
:func:`wait_for` follows a run until its last task is done and returns its
counters as a :class:`~modelscan.registry.base.CrawlStats`, like an inline crawl.

Example:
    >>> run_id = enqueue_crawl("huggingface", db_url)  # doctest: +SKIP
    >>> wait_for(db_url, run_id).summary()  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from modelscan.errors import ModelscanError
from modelscan.registry.base import CrawlStats


class DistributedError(ModelscanError):
    """A distributed crawl cannot go on as asked (no worker, no broker)."""


POLL = 0.5  # seconds between looks at a running crawl
STUCK = 10.0  # seconds a run may show no open task and no close before it is closed
STALL = 600.0  # seconds without any task finishing before waiting gives up


def enqueue_crawl(host: str, db_url: str, **options: Any) -> int:
    """Open a distributed crawl of ``host`` on the index at ``db_url``; its run id.

    Args:
        host: a host name of :data:`modelscan.registry.HOSTS`.
        db_url: the index the workers write (they must be given the same one).
        **options: ``endpoint``, ``author``, ``search``, ``tag``, ``budget``
            (``N/SECONDS``), ``full``, ``queue``.

    Raises:
        StoreError: another crawl of the host is running.
    """
    from modelscan.distributed import app, jobs

    worker = _worker(db_url, app.enqueue)
    options.setdefault("queue", app.queue())
    spec = jobs.CrawlSpec(host=host, index=worker.prefix, **options)
    return jobs.start(spec, worker)


def wait_for(
    db_url: str,
    run_id: int,
    *,
    progress: Callable[[CrawlStats], None] | None = None,
    poll: float = POLL,
    stall: float = STALL,
    sleep: Callable[[float], None] = time.sleep,
) -> CrawlStats:
    """Wait until every task of ``run_id`` is done; return the run's counters.

    A run whose tasks are all done but that nobody closed (the worker that took
    the last task died between its two steps) is closed here.

    Raises:
        DistributedError: no task finished for ``stall`` seconds (no worker
            takes the run's queue); the run stays open for workers to finish.
    """
    from modelscan.distributed import app, jobs
    from modelscan.distributed.state import RunState

    worker = _worker(db_url, app.enqueue)
    state = RunState(worker.redis, worker.prefix, run_id)
    kept = state.spec()
    if kept is None:
        raise DistributedError(
            f"run {run_id} is not a distributed crawl of this index that Redis "
            "knows (its bookkeeping expires after a week)"
        )
    spec = jobs.CrawlSpec.from_json(kept)
    idle_since: float | None = None
    seen, changed_at = None, time.monotonic()
    while state.closed() is None:
        now_seen = (state.counts(), state.open_tasks())
        if now_seen != seen:
            seen, changed_at = now_seen, time.monotonic()
        elif time.monotonic() - changed_at > stall:
            raise DistributedError(
                f"no task of run {run_id} finished for {stall:.0f}s: is a "
                "`modelscan worker` running on its queue, with the same --db? "
                "(the run stays open; workers started later finish it)"
            )
        if progress is not None:
            progress(_stats(spec.host, run_id, now_seen[0], "running", None))
        if now_seen[1] == 0:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > STUCK:
                jobs.finish(spec, worker, run_id)
        else:
            idle_since = None
        sleep(poll)
    return _stats(spec.host, run_id, state.counts(), state.closed() or "failed",
                  state.failure())  # fmt: skip


def broker_status(
    db_url: str, run_ids: list[int], *, timeout: float = 1.0
) -> dict[str, Any]:
    """The broker's view: queue depth, workers taking the queue, open tasks.

    Raises:
        DistributedError: the broker or Redis does not answer.
    """
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    from modelscan.distributed import app
    from modelscan.distributed.state import RunState

    queue = app.queue()
    try:
        worker = _worker(db_url, app.enqueue)
        sender = app.sender()
        with sender.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            depth = _depth(conn, queue)
        replies = sender.control.inspect(timeout=timeout).active_queues() or {}
        open_tasks = {
            run_id: RunState(worker.redis, worker.prefix, run_id).open_tasks()
            for run_id in run_ids
        }
    except (RedisError, OperationalError, OSError) as exc:
        raise DistributedError(
            f"the broker or Redis does not answer ({type(exc).__name__}: {exc}); "
            "check MODELSCAN_BROKER_URL and MODELSCAN_REDIS_URL"
        ) from None
    return {
        "broker": app.safe_broker_url(),
        "queue": queue,
        "queued": depth,
        "workers": sorted(
            name
            for name, queues in replies.items()
            if any(q.get("name") == queue for q in queues or [])
        ),
        "open_tasks": open_tasks,
    }


def _depth(conn: Any, queue: str) -> int:
    """Messages waiting in ``queue`` (0 when it was never declared)."""
    try:
        return int(
            conn.default_channel.queue_declare(queue, passive=True).message_count
        )
    except Exception as exc:  # noqa: BLE001 (amqp's NotFound for a queue not made yet)
        if type(exc).__name__ in ("NotFound", "ChannelError"):
            return 0
        raise


def _stats(
    host: str, run_id: int, counts: dict[str, int], status: str, error: str | None
) -> CrawlStats:
    stats = CrawlStats(host=host, run_id=run_id, status=status, error=error)
    for name, value in counts.items():
        if name == "complete":
            stats.complete = bool(value)
        elif hasattr(stats, name):
            setattr(stats, name, value)
    return stats


def _worker(db_url: str, enqueue: Any) -> Any:
    import redis

    from modelscan.distributed import app, jobs

    client = redis.Redis.from_url(app.redis_url(), decode_responses=True)
    return jobs.Worker(db_url, client, enqueue)
