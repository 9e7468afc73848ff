"""``modelscan link``, ``lineage``, ``spread`` and ``status``: answers from the index.

Each command opens the index, calls one library function (db/lineage_infer.py,
db/lineage_graph.py, db/spread.py) and formats the result.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from modelscan.db.lineage_graph import Subject
    from modelscan.db.spread import Spread, TopRow
    from modelscan.db.store import Store

db_option = click.option(
    "--db",
    envvar="MODELSCAN_DATABASE_URL",
    help="Index URL (SQLAlchemy; default: user data dir).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _open(db: str | None) -> Store:
    from modelscan.db.engine import open_store

    return open_store(db)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or time", param_hint="--since"
        ) from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _subject(store: Store, text: str) -> Subject:
    """Resolve SUBJECT; an existing file is fingerprinted first (not saved)."""
    from modelscan.db.lineage_graph import resolve_subject

    fp = None
    if os.path.isfile(text):
        from modelscan.scanner.fingerprint import fingerprint

        fp = fingerprint(text)
    found: Subject = store.execute(lambda c: resolve_subject(c, text, fp=fp))
    return found


@click.command()
@click.option("--since", help="Look at what was seen from this ISO time on.")
@click.option("--full", is_flag=True, help="Ignore the watermark: look at everything.")
@json_option
@db_option
def link(since: str | None, full: bool, as_json: bool, db: str | None) -> None:
    r"""Infer lineage edges from what the index holds (incremental).

    Copies (the same sha256 in other repos or hosts), conversions (same
    content_id or weights_id, other bytes), fine-tune candidates (sketches of
    same-shape weights correlating at 0.5 or more), base models named inside
    files, and declared parents that have been crawled since. Only what was seen
    since the previous run is looked at; run it after each crawl.

    \b
    Example:
        modelscan link
        modelscan link --full --json
    """
    from modelscan.db.lineage_infer import link as run_link

    with _open(db) as store:
        stats = run_link(store, since=_since(since), full=full)
    click.echo(json.dumps(stats.as_dict()) if as_json else stats.summary())


@click.command()
@click.argument("subject")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "dot", "graphml"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--check", is_flag=True, help="Report declared edges the weights contradict."
)
@click.option(
    "--depth",
    type=click.IntRange(1, 100),
    default=10,
    show_default=True,
    help="Edges to follow up and down.",
)
@db_option
def lineage(subject: str, fmt: str, check: bool, depth: int, db: str | None) -> None:
    r"""Show ancestors and descendants of a repo, a hash or a local file.

    SUBJECT is hf:org/name, civitai:ID, replicate:owner/name, a host URL, a
    hash (sha256, AutoV1/V2/V3, BLAKE3, CRC32) or a model file, fingerprinted
    and compared with the index. Each edge shows its relation, its source
    (declared by a host card or the file, identical hash, same content or
    weights, weight similarity) and its confidence.

    \b
    Example:
        modelscan lineage hf:HuggingFaceH4/zephyr-7b-beta
        modelscan lineage 8ACE1E2C5D --check
        modelscan lineage ./model.safetensors --format dot | dot -Tsvg > tree.svg
        modelscan lineage civitai:4384 --format graphml > family.graphml
    """
    from modelscan.db.lineage_graph import lineage as build
    from modelscan.lineage_render import render

    with _open(db) as store:
        subj = _subject(store, subject)
        graph = store.execute(lambda c: build(c, subj, depth=depth, check=check))
    click.echo(render(graph, fmt))


def _spread_table(s: Spread) -> str:
    data = s.to_json()
    rows: list[tuple[str, str]] = [
        ("exact copies", str(data["exact_copies"])),
        ("content copies", str(data["content_copies"])),
        ("live copies", str(data["live_copies"])),
        (
            "derivatives",
            ", ".join(f"{k} {v}" for k, v in data["derivatives"].items()) or "0",
        ),
        ("hosts", str(data["hosts"])),
        ("owners", str(data["owners"])),
        ("downloads", f"{data['downloads']:,}"),
        ("takedown cost", f"{data['takedown_cost']} accounts hold a live copy"),
    ]
    surv = data["survival"]
    rows.append(
        (
            "survival",
            f"{surv['survived']} of {surv['gone']} gone copies had a "
            "live copy elsewhere"
            if surv["gone"]
            else "no copy went gone",
        )
    )
    for host, at in data["first_seen_per_host"].items():
        rows.append((f"first seen {host}", at[:19].replace("T", " ")))
    added = "  ".join(
        f"{b['start'][:10]}: +{b['added']}" for b in data["added_per_30_days"]
    )
    rows.append(("added per 30 days", added or "-"))
    width = max(len(k) for k, _ in rows)
    head = f"spread of {s.subject.label}" + (
        " and its descendants" if s.descendants else ""
    )
    return "\n".join([head, *(f"  {k:<{width}}  {v}" for k, v in rows)])


def _top_table(rows: list[TopRow], by: str) -> str:
    w = max([len("first seen in"), *(len(r.label) for r in rows)])
    head = (
        f"{'#':>3}  {'first seen in':<{w}} {'live':>5} {'copies':>6} {'hosts':>5} "
        f"{'takedown':>8} {'downloads':>12}  sha256"
    )
    lines = [f"top weights families by {by}", head]
    for i, r in enumerate(rows, 1):
        lines.append(
            f"{i:>3}  {r.label:<{w}} {r.live_copies:>5} {r.copies:>6} {r.hosts:>5} "
            f"{r.takedown_cost:>8} {r.downloads:>12,}  {r.sha256[:12]}"
        )
    return "\n".join(lines)


@click.command()
@click.argument("subject", required=False)
@click.option(
    "--descendants", is_flag=True, help="Count every descendant's copies too."
)
@json_option
@click.option(
    "--plot", type=click.Path(dir_okay=False), help="Draw live copies per host."
)
@click.option("--top", type=click.IntRange(1), help="Rank the N most spread families.")
@click.option(
    "--by",
    type=click.Choice(["live-copies", "takedown-cost"]),
    default="live-copies",
    show_default=True,
    help="Ranking for --top.",
)
@db_option
def spread(
    subject: str | None,
    descendants: bool,
    as_json: bool,
    plot: str | None,
    top: int | None,
    by: str,
    db: str | None,
) -> None:
    r"""Measure how far weights have spread, and what a takedown would cost.

    Exact and same-content copies, derivatives by relation, hosts, owners,
    summed downloads, first sighting per host, copies added per 30 days,
    takedown cost (distinct host/owner accounts holding a live copy) and
    survival (gone copies that had a live copy elsewhere at the time).

    \b
    Example:
        modelscan spread hf:sentence-transformers/all-MiniLM-L6-v2
        modelscan spread 8ACE1E2C5D --descendants --json
        modelscan spread ./model.safetensors --plot spread.png
        modelscan spread --top 20 --by takedown-cost
    """
    from modelscan.db import spread as measures

    if (subject is None) == (top is None):
        raise click.UsageError("give a SUBJECT or --top N (not both)")
    with _open(db) as store:
        if top is not None:
            rows = store.execute(lambda c: measures.top(c, top, by=by))
            click.echo(
                json.dumps([r.to_json() for r in rows], indent=2)
                if as_json
                else _top_table(rows, by)
            )
            return
        assert subject is not None
        subj = _subject(store, subject)
        result = store.execute(
            lambda c: measures.spread(c, subj, descendants=descendants)
        )
    if plot:
        from modelscan.plot import plot_live_copies

        plot_live_copies(result.timeline(), plot, title=subj.label)
    click.echo(
        json.dumps(result.to_json(), indent=2) if as_json else _spread_table(result)
    )
    if plot and not as_json:
        click.echo(f"plot written to {plot}", err=True)


def _run_row(run: Any) -> dict[str, Any]:
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


def _status_table(runs: list[dict[str, Any]], link_state: dict[str, Any] | None) -> str:
    head = (
        f"{'host':<12} {'started (UTC)':<16} {'finished':<16} {'status':<9} "
        f"{'new':>6} {'changed':>7} {'gone':>5} {'errors':>6}"
    )
    lines = [head]
    for r in runs:
        done = (r["finished_at"] or "-")[:16].replace("T", " ")
        lines.append(
            f"{r['host']:<12} {r['started_at'][:16].replace('T', ' '):<16} "
            f"{done:<16} {r['status']:<9} {r['new']:>6} {r['changed']:>7} "
            f"{r['gone']:>5} {r['errors']:>6}"
        )
    if not runs:
        lines.append("(no crawl runs yet: run `modelscan crawl HOST`)")
    if link_state:
        lines.append(
            f"link: last run {link_state['finished_at'][:16].replace('T', ' ')}, "
            f"{link_state.get('blobs', 0)} blobs looked at, edges "
            f"{link_state.get('copy', 0)} copy, {link_state.get('conversion', 0)} "
            f"conversion, {link_state.get('similarity', 0)} similarity"
        )
    else:
        lines.append("link: never run (`modelscan link`)")
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
@json_option
@db_option
def status(host: str | None, per_host: int, as_json: bool, db: str | None) -> None:
    r"""Show the last crawl runs per host, and the last link run.

    Each run: when it started and finished, its status (ok, failed, running,
    abandoned), how many listings were new, changed or gone, and how many
    items failed.

    \b
    Example:
        modelscan status
        modelscan status --host civitai --runs 5 --json
    """
    from sqlalchemy import select

    from modelscan.db.lineage_infer import load_link_state
    from modelscan.db.tables import HostRow

    with _open(db) as store:
        hosts = (
            [host]
            if host
            else store.execute(
                lambda c: [
                    h for (h,) in c.execute(select(HostRow.name).order_by(HostRow.name))
                ]
            )
        )
        runs = [_run_row(r) for h in hosts for r in store.runs(h, per_host)]
        link_state = store.execute(load_link_state)
    if as_json:
        click.echo(json.dumps({"runs": runs, "link": link_state}, indent=2))
    else:
        click.echo(_status_table(runs, link_state))


COMMANDS: list[click.Command] = [link, lineage, spread, status]
