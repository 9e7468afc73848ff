"""``modelscan spread``: how far weights have spread, and what a takedown would cost.

The command opens the index read-only, calls ``modelscan.lineage.spread``
(``spread`` or ``top``) and formats the measures.

Example:
    $ modelscan spread hf:org/name --json
    $ modelscan spread --top 20 --by takedown-cost
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from modelscan.cli.lineage_cmd import resolve_cli_subject
from modelscan.cli.options import db_option, json_option, open_index
from modelscan.hostinfo import host_table

if TYPE_CHECKING:
    from modelscan.lineage.spread import Spread, TopRow


def _survival(surv: dict[str, int]) -> str:
    if not surv["gone"]:
        return "no copy went gone"
    return f"{surv['survived']} of {surv['gone']} gone copies had a live copy elsewhere"


def _per(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _dated_by(counts: dict[str, int]) -> str:
    published, seen = counts.get("published_at", 0), counts.get("first_seen", 0)
    if not seen:
        return "by the hosts' dates"
    if not published:
        return "by first sighting (no host date)"
    return f"{published} by the hosts' dates, {seen} by first sighting"


def spread_table(s: Spread) -> str:
    """Return the measures of a spread as an aligned two-column table."""
    data = s.to_json()
    juris = data["jurisdictions"]
    rows: list[tuple[str, str]] = [
        ("exact copies", str(data["exact_copies"])),
        ("content copies", str(data["content_copies"])),
        ("live copies", str(data["live_copies"])),
        ("derivatives", _per(data["derivatives"]) if data["derivatives"] else "0"),
        ("hosts", str(data["hosts"])),
        ("owners", str(data["owners"])),
        ("downloads", f"{data['downloads']:,} (as each host counts them)"),
        ("  last 30 days", f"{data['downloads_last_30_days']:,} (Hugging Face)"),
        ("  all time", f"{data['downloads_all_time']:,} (where the host says)"),
        ("takedown cost", f"{data['takedown_cost']} accounts hold a live copy"),
        ("jurisdictions", f"{len(juris)}: {_per(juris)} (live copies)"),
        ("operators", _per(data["operators"])),
        ("survival", _survival(data["survival"])),
    ]
    for host, at in data["first_published_per_host"].items():
        rows.append((f"first published {host}", at[:10]))
    for host, at in data["first_seen_per_host"].items():
        rows.append((f"first seen {host}", at[:19].replace("T", " ")))
    added = "  ".join(
        f"{b['start'][:10]}: +{b['added']}"
        for b in data["added_per_30_days"]
        if b["added"]
    )
    rows.append(("added per 30 days", added or "-"))
    rows.append(("  dated", _dated_by(data["growth_dated_by"])))
    width = max(len(k) for k, _ in rows)
    head = f"spread of {s.subject.label}" + (
        " and its descendants" if s.descendants else ""
    )
    return "\n".join([head, *(f"  {k:<{width}}  {v}" for k, v in rows)])


def top_table(rows: list[TopRow], by: str) -> str:
    """Return ``spread --top`` as a table, one family a line."""
    w = max([len("first seen in"), *(len(r.label) for r in rows)])
    head = (
        f"{'#':>3}  {'first seen in':<{w}} {'live':>5} {'copies':>6} {'hosts':>5} "
        f"{'takedown':>8} {'downloads':>12}  sha256"
    )
    lines = [f"top weights families by {by}", head]
    for i, r in enumerate(rows, 1):
        f = r.family
        lines.append(
            f"{i:>3}  {r.label:<{w}} {f.live_copies:>5} {f.copies:>6} {f.hosts:>5} "
            f"{f.takedown_cost:>8} {f.downloads:>12,}  {r.sha256[:12]}"
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
    from modelscan.lineage import spread as measures

    if (subject is None) == (top is None):
        raise click.UsageError("give a SUBJECT or --top N (not both)")
    with open_index(db, read_only=True) as store:
        if top is not None:
            rows = measures.top(store, top, by=by)
            click.echo(
                json.dumps([r.to_json() for r in rows], indent=2)
                if as_json
                else top_table(rows, by)
            )
            return
        assert subject is not None
        subj = resolve_cli_subject(store, subject)
        result = measures.spread(
            store, subj, descendants=descendants, hosts=host_table()
        )
    if plot:
        from modelscan.plot import plot_live_copies

        dated = _dated_by(result.growth_dated_by())
        plot_live_copies(
            result.timeline(), plot, title=subj.label, dated_by=f"copies dated {dated}"
        )
    click.echo(
        json.dumps(result.to_json(), indent=2) if as_json else spread_table(result)
    )
    if plot and not as_json:
        click.echo(f"plot written to {plot}", err=True)


COMMANDS: list[click.Command] = [spread]
