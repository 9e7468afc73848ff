"""The Celery app: broker from ``MODELSCAN_BROKER_URL``, tasks three lines each.

Tasks are acknowledged late and rejected when their worker is lost, so a task
whose worker was killed is delivered again; every job is idempotent
(:mod:`modelscan.distributed.jobs`), so that leaves the same index. No result
backend: state lives in the index and in Redis (``MODELSCAN_REDIS_URL``, the
broker's own Redis by default). Prefetch is one task at a time, so a killed
worker takes at most its running tasks with it.

Environment:
    MODELSCAN_BROKER_URL: ``redis://127.0.0.1:6379/0`` (default) or ``amqp://...``.
    MODELSCAN_REDIS_URL: Redis for budgets and run state (default: the broker's
        when it is Redis, else ``redis://127.0.0.1:6379/0``).
    MODELSCAN_DATABASE_URL: the index every worker writes (or ``worker --db``).
    MODELSCAN_QUEUE: the queue crawls go to and workers take from (``modelscan``).
    MODELSCAN_VISIBILITY_TIMEOUT: seconds before a Redis broker redelivers a task
        whose worker vanished (default 3600; RabbitMQ redelivers at once).

Example:
    $ MODELSCAN_DATABASE_URL=postgresql+psycopg://crawler@db/modelscan modelscan worker
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from modelscan.distributed import jobs

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def broker_url() -> str:
    """The broker the app talks to."""
    return os.environ.get("MODELSCAN_BROKER_URL") or DEFAULT_BROKER


def queue() -> str:
    """The queue crawls are enqueued on and workers take from by default."""
    return os.environ.get("MODELSCAN_QUEUE") or "modelscan"


def redis_url() -> str:
    """Where budgets and run state live."""
    given = os.environ.get("MODELSCAN_REDIS_URL")
    if given:
        return given
    broker = broker_url()
    return broker if broker.startswith(("redis://", "rediss://")) else DEFAULT_BROKER


def make_app() -> Celery:
    """The Celery app with this project's delivery guarantees."""
    app = Celery("modelscan", broker=broker_url())
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue="modelscan",
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": int(
                os.environ.get("MODELSCAN_VISIBILITY_TIMEOUT", "3600")
            )
        },
        worker_hijack_root_logger=False,
    )
    return app


app = make_app()
_worker: jobs.Worker | None = None
_senders: dict[str, Celery] = {}


def sender() -> Celery:
    """The app for the broker the environment names now.

    A worker sends on its own app; a process that enqueues crawls (the CLI, a
    test) may be pointed at another broker after this module was imported.
    """
    url = broker_url()
    found = app if url == app.conf.broker_url else _senders.get(url)
    if found is None:
        found = _senders[url] = make_app()
    return found


def safe_broker_url() -> str:
    """The broker URL with its password hidden."""
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(broker_url()))


def enqueue(name: str, args: list[Any], queue: str) -> None:
    """Send one task by name to ``queue``."""
    sender().send_task(name, args=args, queue=queue)


def worker() -> jobs.Worker:
    """This process's :class:`~modelscan.distributed.jobs.Worker` (made once)."""
    global _worker
    if _worker is None:
        import redis

        from modelscan.db.engine import default_url

        client = redis.Redis.from_url(redis_url(), decode_responses=True)
        _worker = jobs.Worker(default_url(), client, enqueue)
    return _worker


@app.task(name="modelscan.list_page")
def list_page(spec: dict[str, Any], run_id: int, cursor: str | None) -> None:
    """List one page of a host (see :func:`jobs.list_page`)."""
    jobs.list_page(jobs.CrawlSpec.from_json(spec), worker(), run_id, cursor)


@app.task(name="modelscan.complete_listing")
def complete_listing(spec: dict[str, Any], run_id: int, data: dict[str, Any]) -> None:
    """Fetch and save one repo's details (see :func:`jobs.complete_listing`)."""
    jobs.complete_listing(jobs.CrawlSpec.from_json(spec), worker(), run_id, data)


@app.task(name="modelscan.finish")
def finish(spec: dict[str, Any], run_id: int) -> None:
    """Close a distributed run (see :func:`jobs.finish`)."""
    jobs.finish(jobs.CrawlSpec.from_json(spec), worker(), run_id)
