"""``modelscan link`` and ``lineage``: lineage edges inferred, then walked.

Each command opens the index, calls one library function in
``modelscan/lineage/`` (``infer.link``, ``graph.lineage``) and formats the
result (modelscan/lineage_render.py).

Example:
    $ modelscan link
    $ modelscan lineage hf:org/name --check
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from modelscan.cli.options import db_option, json_option, open_index

if TYPE_CHECKING:
    from modelscan.lineage.rows import LineageIndex
    from modelscan.lineage.subjects import Subject


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


def resolve_cli_subject(index: LineageIndex, text: str) -> Subject:
    """Resolve SUBJECT; an existing file is fingerprinted first (not saved)."""
    from modelscan.lineage.subjects import resolve_subject

    fp = None
    if os.path.isfile(text):
        from modelscan.scanner.fingerprint import fingerprint

        fp = fingerprint(text)
    return resolve_subject(index, text, fp=fp)


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
    import json

    from modelscan.lineage.infer import link as run_link

    with open_index(db) as store:
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
    "--check",
    is_flag=True,
    help="Report declared edges the weights contradict (exit status 1 if any).",
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
    and compared with the index. Each related repo shows its relations, their
    sources (declared by a host card or the file, identical hash, same content
    or weights, weight similarity), how many files and the confidence. With
    --check the exit status is 1 when a declared edge is contradicted.

    \b
    Example:
        modelscan lineage hf:HuggingFaceH4/zephyr-7b-beta
        modelscan lineage 8ACE1E2C5D --check
        modelscan lineage ./model.safetensors --format dot | dot -Tsvg > tree.svg
        modelscan lineage civitai:4384 --format graphml > family.graphml
    """
    from modelscan.lineage.graph import lineage as build
    from modelscan.lineage_render import render

    with open_index(db, read_only=True) as store:
        graph = build(
            store, resolve_cli_subject(store, subject), depth=depth, check=check
        )
    click.echo(render(graph, fmt))
    if check and graph.contradictions:
        sys.exit(1)


COMMANDS: list[click.Command] = [link, lineage]
