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

from modelscan.registry.base import CrawlStats

POLL = 0.5  # seconds between looks at a running crawl
STUCK = 10.0  # seconds a run may show no open task and no close before it is closed


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
    sleep: Callable[[float], None] = time.sleep,
) -> CrawlStats:
    """Wait until every task of ``run_id`` is done; return the run's counters.

    A run whose tasks are all done but that nobody closed (the worker that took
    the last task died between its two steps) is closed here.
    """
    from modelscan.distributed import app, jobs
    from modelscan.distributed.state import RunState

    worker = _worker(db_url, app.enqueue)
    state = RunState(worker.redis, worker.prefix, run_id)
    run = next(r for r in worker.store().runs(limit=1000) if r.id == run_id)
    idle_since: float | None = None
    while state.closed() is None:
        if progress is not None:
            progress(_stats(run.host, run_id, state.counts(), "running", None))
        if state.open_tasks() == 0:
            idle_since = idle_since or time.monotonic()
            kept = state.spec()
            if kept is not None and time.monotonic() - idle_since > STUCK:
                jobs.finish(jobs.CrawlSpec.from_json(kept), worker, run_id)
        else:
            idle_since = None
        sleep(poll)
    return _stats(run.host, run_id, state.counts(), state.closed() or "failed",
                  state.failure())  # fmt: skip


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
