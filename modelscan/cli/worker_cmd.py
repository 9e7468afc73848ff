r"""``modelscan worker``: a Celery worker running the distributed crawl's tasks.

Celery is imported inside the command, so ``modelscan --help`` stays fast and a
machine without the ``distributed`` extra gets one line saying what to install.

Example:
    $ MODELSCAN_DATABASE_URL=postgresql+psycopg://crawler@db/modelscan \
      MODELSCAN_BROKER_URL=redis://broker:6379/0 modelscan worker --concurrency 8
"""

from __future__ import annotations

import os

import click

from modelscan.cli import CommandError
from modelscan.cli.options import db_option


def need_celery() -> None:
    """Fail with one line when the distributed extra is not installed."""
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        raise CommandError(
            "distributed crawls need Celery and Redis: "
            "pip install 'modelscan-provenance[distributed]'"
        ) from None


@click.command("worker")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    help="Tasks run at once (threads: the work is waiting on hosts).",
)
@click.option(
    "--queues",
    envvar="MODELSCAN_QUEUE",
    default="modelscan",
    show_default=True,
    help="Comma list of queues to take tasks from (MODELSCAN_QUEUE).",
)
@click.option(
    "--name",
    metavar="NAME",
    help="This worker's node name (default celery@HOSTNAME; give several workers "
    "on one machine names of their own, e.g. w1@%h).",
)
@db_option
def worker_command(
    concurrency: int, queues: str, name: str | None, db: str | None
) -> None:
    r"""Run distributed crawl tasks from the broker until stopped.

    The broker is MODELSCAN_BROKER_URL (default redis://127.0.0.1:6379/0;
    amqp:// works the same), budgets and run state live in MODELSCAN_REDIS_URL
    (default: the broker's Redis). Tokens come from this worker's environment:
    HF_TOKENS (a comma list or a file of tokens) or HF_TOKEN, and the same for
    CIVITAI_API_TOKEN(S) and REPLICATE_API_TOKEN(S); every worker on one token
    shares one request budget. The index (--db) is the same for every worker
    and for the crawl. Stop it with Ctrl-C (running tasks finish).

    \b
    Example:
        modelscan worker --concurrency 8
        modelscan worker --queues modelscan,deep --db postgresql+psycopg://db/modelscan
    """  # noqa: D301 (a real \b: click keeps the example's lines as they are)
    need_celery()
    if db:
        os.environ["MODELSCAN_DATABASE_URL"] = db
    from modelscan.distributed.app import app, worker

    worker().store()  # open and migrate the index before taking any task
    argv = ["worker", "--pool", "threads", "--concurrency", str(concurrency),
            "--queues", queues, "--loglevel", "INFO", "--without-gossip",
            "--without-mingle"]  # fmt: skip
    if name:
        argv += ["--hostname", name]
    app.worker_main(argv)


COMMANDS: list[click.Command] = [worker_command]
