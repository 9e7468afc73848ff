"""``modelscan status``: the last crawl runs per host, and the last ``link`` run.

Reads the index read-only through typed Store methods (``host_names``,
``runs``, ``link_state``) and formats them.

Example:
    $ modelscan status --host civitai --runs 5 --json
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from modelscan.cli.options import db_option, json_option, open_index

if TYPE_CHECKING:
    from modelscan.db.runs import RunInfo
    from modelscan.lineage.rows import LinkWatermark


def run_row(run: RunInfo) -> dict[str, Any]:
    """Return the JSON form of one crawl run."""
    stats = run.stats or {}
    return {
        "id": run.id,
        "host": run.host,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "status": run.status,
        "new": stats.get("new", 0),
        "changed": stats.get("changed", 0),
        "gone": stats.get("gone", 0),
        "errors": run.errors,
    }


def link_json(state: LinkWatermark | None) -> dict[str, Any] | None:
    """Return what the last link run saved, with when it finished."""
    if state is None:
        return None
    return {**state.state, "finished_at": state.finished_at.isoformat()}


def _minute(iso: str | None) -> str:
    return (iso or "-")[:16].replace("T", " ")


def status_table(runs: list[dict[str, Any]], link: dict[str, Any] | None) -> str:
    """Return runs and the link run as a table for a terminal."""
    lines = [
        f"{'host':<12} {'started (UTC)':<16} {'finished':<16} {'status':<9} "
        f"{'new':>6} {'changed':>7} {'gone':>5} {'errors':>6}"
    ]
    for r in runs:
        lines.append(
            f"{r['host']:<12} {_minute(r['started_at']):<16} "
            f"{_minute(r['finished_at']):<16} {r['status']:<9} {r['new']:>6} "
            f"{r['changed']:>7} {r['gone']:>5} {r['errors']:>6}"
        )
    if not runs:
        lines.append("(no crawl runs yet: run `modelscan crawl HOST`)")
    if link is None:
        lines.append("link: never run (`modelscan link`)")
        return "\n".join(lines)
    lines.append(
        f"link: last run {_minute(link['finished_at'])}, "
        f"{link.get('blobs', 0)} blobs looked at, edges "
        f"{link.get('copy', 0)} copy, {link.get('conversion', 0)} "
        f"conversion, {link.get('similarity', 0)} similarity"
    )
    return "\n".join(lines)


@click.command()
@click.option("--host", help="Only this host.")
@click.option(
    "--runs",
    "per_host",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Runs to show per host.",
)
@click.option(
    "--broker",
    "with_broker",
    is_flag=True,
    help="Also ask the broker (queue depth, live workers); automatic while a "
    "distributed crawl runs.",
)
@json_option
@db_option
def status(
    host: str | None, per_host: int, with_broker: bool, as_json: bool, db: str | None
) -> None:
    r"""Show the last crawl runs per host, and the last link run.

    Each run: when it started and finished, its status (ok, failed, running,
    abandoned), how many listings were new, changed or gone, and how many
    items failed. While a distributed crawl runs (or with --broker), also the
    broker's queue depth, the live workers and each running crawl's open tasks.

    \b
    Example:
        modelscan status
        modelscan status --host civitai --runs 5 --json
        modelscan status --broker
    """
    with open_index(db, read_only=True) as store:
        hosts = [host] if host else store.host_names()
        infos = [r for h in hosts for r in store.runs(h, per_host)]
        link = link_json(store.link_state())
        url = store.url
    runs = [run_row(r) for r in infos]
    distributed = [
        r.id for r in infos if r.status == "running" and r.params.get("distributed")
    ]
    broker = _broker(url, distributed) if with_broker or distributed else None
    if as_json:
        out = {"runs": runs, "link": link}
        if broker is not None:
            out["broker"] = broker
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(status_table(runs, link))
    if broker is not None:
        click.echo(broker_lines(broker))


def _broker(url: str, run_ids: list[int]) -> dict[str, Any]:
    """The broker's view, or the reason it cannot be had (one line, no traceback)."""
    from modelscan.cli.worker_cmd import need_celery
    from modelscan.distributed import DistributedError, broker_status

    need_celery()
    try:
        return broker_status(url, run_ids)
    except DistributedError as exc:
        return {"error": str(exc)}


def broker_lines(broker: dict[str, Any]) -> str:
    """The broker's view for a terminal."""
    if "error" in broker:
        return f"broker: {broker['error']}"
    workers = ", ".join(broker["workers"]) or "none answering"
    lines = [
        f"broker: {broker['broker']}, queue {broker['queue']}: "
        f"{broker['queued']} tasks waiting; workers: {workers}"
    ]
    for run_id, count in broker["open_tasks"].items():
        lines.append(f"run {run_id}: {count} tasks enqueued or running")
    return "\n".join(lines)


COMMANDS: list[click.Command] = [status]
