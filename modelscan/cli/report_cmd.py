"""``modelscan report``: one self-contained HTML page of a spread, or of the index.

The command opens the index read-only, gathers the subject's spread, lineage
graph and contradictions through ``modelscan.report.data`` (or the top
families), renders them with ``modelscan.report.page`` and writes one file.

Example:
    $ modelscan report hf:org/name -o report.html
    $ modelscan report --top 20 -o index.html
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from modelscan.cli.lineage_cmd import resolve_cli_subject
from modelscan.cli.options import db_option, json_flag, open_index

LAYOUTS = ("auto", "graphviz", "builtin")


def _write(path: str, html: str) -> int:
    data = html.encode("utf-8")
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise click.FileError(path, hint=exc.strerror or str(exc)) from exc
    return len(data)


@click.command()
@click.argument("subject", required=False)
@click.option(
    "--descendants", is_flag=True, help="Count every descendant's copies too."
)
@click.option(
    "--top", type=click.IntRange(1), help="Report the N most spread families."
)
@click.option(
    "--by",
    type=click.Choice(["live-copies", "takedown-cost"]),
    default="live-copies",
    show_default=True,
    help="Ranking for --top.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default="report.html",
    show_default=True,
    help="The HTML file to write.",
)
@click.option(
    "--layout",
    type=click.Choice(LAYOUTS),
    default="auto",
    show_default=True,
    help="Lineage graph: Graphviz (needs `dot`), our own layout, or Graphviz if found.",
)
@json_flag("Print what was written as JSON.")
@db_option
def report(
    subject: str | None,
    descendants: bool,
    top: int | None,
    by: str,
    output: str,
    layout: str,
    as_json: bool,
    db: str | None,
) -> None:
    r"""Write one self-contained HTML page of a spread (no network needed to read it).

    Headline numbers (those of `spread --json`), copies per host over their
    published dates, the lineage graph, every copy with a link to it on its
    host, the contradictions `lineage --check` finds, and the method. With
    --top N, the N most spread families, each with its numbers and copies.

    \b
    Example:
        modelscan report hf:sentence-transformers/all-MiniLM-L6-v2 -o report.html
        modelscan report 8ACE1E2C5D --descendants -o family.html
        modelscan report --top 20 --by takedown-cost -o index.html
    """
    from modelscan.report import data, page
    from modelscan.report.graph_svg import have_graphviz

    if (subject is None) == (top is None):
        raise click.UsageError("give a SUBJECT or --top N (not both)")
    if layout == "graphviz" and not have_graphviz():
        raise click.UsageError(
            "--layout graphviz needs the dot binary (apt-get install graphviz) "
            "and the graphviz package"
        )
    with open_index(db, read_only=True) as store:
        if top is not None:
            index = data.gather_top(store, top, by=by)
            html = page.render_index(index)
            summary = {"families": len(index.families)}
        else:
            assert subject is not None
            subj = resolve_cli_subject(store, subject)
            found = data.gather(store, subj, descendants=descendants)
            html = page.render_report(found, engine=layout)
            graph = found.graph
            summary = {
                "copies": len(found.copies),
                "nodes": len(graph.nodes) if graph else 0,
                "contradictions": len(graph.contradictions) if graph else 0,
            }
    size = _write(output, html)
    done = {"path": output, "bytes": size, **summary}
    if as_json:
        click.echo(json.dumps(done, indent=2))
        return
    what = ", ".join(f"{v} {k}" for k, v in summary.items())
    click.echo(f"report written to {output} ({size:,} bytes; {what})", err=True)


COMMANDS: list[click.Command] = [report]
