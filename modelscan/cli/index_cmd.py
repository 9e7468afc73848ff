"""``modelscan where``, ``modelscan sql`` and ``modelscan db``: the index commands.

Each command calls one library function in ``modelscan.db`` and formats its
result; SQLAlchemy and the scanner are imported inside the commands so that
``modelscan --help`` stays fast.

Example:
    $ modelscan where 8ACE1E2C5D
    $ modelscan sql "SELECT * FROM blob_copies ORDER BY live_copies DESC LIMIT 10"
"""

from __future__ import annotations

import base64
import csv
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from modelscan.cli.options import db_option, json_flag, open_index

if TYPE_CHECKING:
    from modelscan.db.lookup import Match

MAX_CELL = 80  # table cells longer than this are cut (use --csv/--json for all)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "?"


def format_match(m: Match) -> str:
    """Return one line for a match: kind, status, where."""
    status = m.status if m.status == "live" else f"{m.status} since {_when(m.since)}"
    if m.host == "local":
        where = f"local:{m.path}"
    else:
        version = f"@{m.version}" if m.version else ""
        where = f"{m.host}:{m.repo}{version}  {m.path}"
    return f"{m.kind:<13} {status:<27} {where}"


@click.command()
@click.argument("target", metavar="HASH_OR_FILE")
@db_option
@json_flag("One JSON object per occurrence.")
def where(target: str, db: str | None, as_json: bool) -> None:
    r"""Every known occurrence of a file, by hash or by fingerprinting a local file.

    HASH_OR_FILE is a sha256, autov1, autov2, autov3, blake3 or CRC32 in any case
    (Civitai's spellings included, optionally prefixed with the kind, e.g.
    autov2:8ACE1E2C5D), or the path of a local file, which is fingerprinted first
    (any file: one that is no model is looked up by its file hashes).
    Exact copies come first, then files with the same tensors (content_id), then
    the same weights under other names (weights_id). Exit status 1: none known.

    \b
    Example:
        modelscan where 8ACE1E2C5D
        modelscan where 85114A0D --json
        modelscan where ./downloads/model.safetensors
    """
    with open_index(db, read_only=True) as store:
        if os.path.isfile(target):
            from modelscan.scanner.fingerprint import fingerprint

            matches = store.find_fingerprint(fingerprint(target, any_file=True))
        else:
            matches = store.find(target)
    if not matches:
        click.echo(f"modelscan: no known occurrence of {target}", err=True)
        sys.exit(1)
    for m in matches:
        click.echo(json.dumps(m.to_json()) if as_json else format_match(m))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return rows as an aligned text table with a header."""
    cells = [[_cell(v) for v in row] for row in rows]
    cells = [
        [c if len(c) <= MAX_CELL else c[: MAX_CELL - 3] + "..." for c in r]
        for r in cells
    ]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


@click.command()
@click.argument("query", metavar="SQL")
@db_option
@click.option("--csv", "fmt", flag_value="csv", help="CSV with a header row.")
@click.option("--json", "fmt", flag_value="json", help="A JSON array of objects.")
@click.option("--write", is_flag=True, help="Allow a statement that writes.")
def sql(query: str, db: str | None, fmt: str | None, write: bool) -> None:
    r"""Run one SQL statement on the index and print the result.

    Read-only unless --write: the database connection itself refuses writes, so
    any statement that would change the index fails with a one-line message.
    The same SQL runs on SQLite and PostgreSQL; see README for the tables and
    the views blob_copies, repo_summary and blob_identity.

    \b
    Example:
        modelscan sql "SELECT * FROM blob_copies ORDER BY live_copies DESC LIMIT 10"
        modelscan sql "SELECT host, count(*) FROM repos GROUP BY host" --csv
    """
    from modelscan.db.engine import default_url
    from modelscan.db.query import run_sql

    result = run_sql(db or default_url(), query, write=write)
    if not result.columns:
        click.echo(f"{max(result.rowcount, 0)} rows affected")
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([[_cell(v) for v in row] for row in result.rows])
    elif fmt == "json":
        objects = [
            {c: _json_value(v) for c, v in zip(result.columns, row, strict=True)}
            for row in result.rows
        ]
        click.echo(json.dumps(objects, indent=2))
    else:
        click.echo(format_table(result.columns, result.rows))


@click.group("db")
def db_group() -> None:
    r"""Inspect, migrate and unlock the index.

    \b
    Example:
        modelscan db info
        modelscan db upgrade --db postgresql+psycopg://user@host/modelscan
    """


@db_group.command("info")
@db_option
@json_flag("Print a JSON object.")
def db_info(db: str | None, as_json: bool) -> None:
    r"""Show the index URL (password hidden), schema revision and row counts.

    \b
    Example:
        modelscan db info
    """
    from modelscan.db.engine import default_url
    from modelscan.db.query import index_info

    info = index_info(db or default_url())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "url": info.url,
                    "dialect": info.dialect,
                    "revision": info.revision,
                    "head": info.head,
                    "tables": info.tables,
                },
                indent=2,
            )
        )
        return
    state = "up to date" if info.revision == info.head else f"head is {info.head}"
    click.echo(f"url       {info.url}")
    click.echo(f"revision  {info.revision or 'none (empty database)'} ({state})")
    width = max((len(t) for t in info.tables), default=0) + 2
    for table, n in info.tables.items():
        click.echo(f"  {table:<{width}}{n:>10,}")


@db_group.command("upgrade")
@db_option
def db_upgrade(db: str | None) -> None:
    r"""Create the index or migrate it to this version's schema.

    Every command that writes does this on first use; run it by hand to migrate
    a shared PostgreSQL index before workers start.

    \b
    Example:
        modelscan db upgrade
    """
    from modelscan.db.engine import default_url, hide_password, make_engine
    from modelscan.db.migrate import upgrade

    url = db or default_url()
    engine = make_engine(url)
    try:
        revision = upgrade(engine)
    finally:
        engine.dispose()
    click.echo(f"{hide_password(url)}: at revision {revision}")


@db_group.command("recount")
@db_option
def db_recount(db: str | None) -> None:
    r"""Rebuild the rank counters (blob_copies, spread --top) from the occurrences.

    Every write keeps them exact; run this to repair an index written by hand
    or by an older version outside the migrations.

    \b
    Example:
        modelscan db recount
    """
    with open_index(db) as store:
        rows = store.recount()
    for table, n in rows.items():
        click.echo(f"  {table:<16}{n:>12,}")


@db_group.command("unlock")
@click.argument("host")
@db_option
def db_unlock(host: str, db: str | None) -> None:
    r"""Remove the crawl lock of HOST left by a crawl that died.

    Only needed when the dead crawl ran on another machine: a lock whose process
    is gone on this machine, or whose heartbeat is over an hour old, is taken
    over by the next crawl anyway.

    \b
    Example:
        modelscan db unlock civitai
    """
    with open_index(db) as store:
        run_id = store.release_lock(host)
    if run_id is None:
        click.echo(f"no crawl lock for {host}")
    else:
        click.echo(f"removed the lock of {host} (crawl run {run_id} marked abandoned)")


COMMANDS: list[click.Command] = [where, sql, db_group]
