"""The report page: one self-contained HTML file (CSS inline, charts as SVG).

:func:`render_report` turns a :class:`~modelscan.report.data.Report` into the
page ``modelscan report SUBJECT`` writes; :func:`render_index` the page of
``modelscan report --top N``. Nothing on the page is fetched: no script, no
font, no stylesheet or image from anywhere. Every string from the index (repo
names, owners, paths, card text) is hostile input and goes through
:func:`html.escape`; links are kept only when they are http(s) URLs.

Each headline number carries ``data-measure`` (its ``spread --json`` key) and
``data-value`` (the JSON value), so a reader's tool can take them off the page.

Example:
    >>> html = render_report(gather(store, subject))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

from modelscan import __version__
from modelscan.report import method
from modelscan.report.chart import growth_svg
from modelscan.report.data import IndexReport, Report, dated
from modelscan.report.graph_svg import graph_svg
from modelscan.report.style import CSS

RANK_COLUMNS = (  # ``TopRow.to_json()`` keys, shown when the ranking has them
    ("live_copies", "live"),
    ("copies", "copies"),
    ("hosts", "hosts"),
    ("jurisdictions", "jurisdictions"),
    ("owners", "owners"),
    ("takedown_cost", "takedown cost"),
    ("downloads", "downloads"),
)
COPY_WRAP = frozenset({2, 3, 4})  # owner, repo, path: long names break anywhere
DERIVATIVE_NAMES = {
    "finetune": "fine-tunes",
    "adapter": "adapters",
    "quantized": "quantizations",
    "merge": "merges",
}
EDGES_OPEN_UP_TO = 40  # edges: a longer list starts folded
COPY_COLUMNS = (
    ("kind", "kind"),
    ("host", "host"),
    ("owner", "owner"),
    ("repo", "repo"),
    ("path", "path"),
    ("status", "status"),
    ("published_at", "published"),
    ("first_seen", "first seen"),
    ("gone_at", "gone"),
)


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _day(text: object) -> str:
    return _e(str(text)[:10]) if text else "–"


def _document(title: str, body: list[str], *, now: datetime | None = None) -> str:
    made = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            # Nothing may be fetched: no script, style or image from anywhere.
            '<meta http-equiv="Content-Security-Policy" content="default-src '
            "'none'; style-src 'unsafe-inline'; img-src data:\">",
            '<link rel="icon" href="data:,">',
            f"<title>{_e(title)}</title>",
            f"<style>{CSS}</style></head><body>",
            *body,
            f"<footer>modelscan {_e(__version__)}, made {_e(made)}.</footer>",
            "</body></html>",
        ]
    )


# --- headline numbers -----------------------------------------------------------------


def _measure(key: str, value: Any, label: str, shown: str | None = None) -> str:
    return (
        f'<div class="measure"><dt>{_e(label)}</dt>'
        f'<dd data-measure="{_e(key)}" data-value="{_e(json.dumps(value))}">'
        f"{_e(shown if shown is not None else value)}</dd></div>"
    )


def _survival_text(surv: dict[str, Any]) -> str:
    if not surv.get("gone"):
        return "none gone"
    return f"{surv['survived']} of {surv['gone']}"


def headline(m: dict[str, Any]) -> str:
    """The headline numbers, each marked with its ``spread --json`` key."""
    items = [
        _measure("exact_copies", m["exact_copies"], "exact copies"),
        _measure("content_copies", m["content_copies"], "same-content copies"),
        _measure("live_copies", m["live_copies"], "live copies"),
        _measure("hosts", m["hosts"], "hosts"),
    ]
    for key, label in (("jurisdictions", "jurisdictions"), ("operators", "operators")):
        if m.get(key) is not None:
            items.append(_measure(key, len(m[key]), f"{label} (live)"))
    items.append(_measure("owners", m["owners"], "owners (accounts)"))
    items.append(
        _measure("downloads", m["downloads"], "downloads", f"{m['downloads']:,}")
    )
    for key, label in (
        ("downloads_all_time", "downloads, all time"),
        ("downloads_last_30_days", "downloads, last 30 days"),
    ):
        if m.get(key) is not None:
            items.append(_measure(key, m[key], label, f"{m[key]:,}"))
    items.append(_measure("takedown_cost", m["takedown_cost"], "takedown cost"))
    surv = m["survival"]
    items.append(_measure("survival", surv, "survived takedowns", _survival_text(surv)))
    for relation, count in m["derivatives"].items():
        name = DERIVATIVE_NAMES.get(relation, relation)
        items.append(_measure(f"derivatives.{relation}", count, name))
    if not m["derivatives"]:
        items.append(_measure("derivatives", {}, "derivatives", "0"))
    return '<dl class="measures">' + "".join(items) + "</dl>"


# --- tables ---------------------------------------------------------------------------


def _table(
    head: list[str],
    rows: list[list[str]],
    *,
    cls: str = "",
    wrap: frozenset[int] = frozenset(),
) -> str:
    """A table; only the columns in ``wrap`` may break inside a word."""
    if not rows:
        return '<p class="none">None.</p>'
    th = "".join(f"<th>{h}</th>" for h in head)
    kinds = [' class="w"' if i in wrap else "" for i in range(len(head))]
    body = "".join(
        "<tr>"
        + "".join(f"<td{k}>{c}</td>" for k, c in zip(kinds, r, strict=True))
        + "</tr>"
        for r in rows
    )
    head_row = f"<thead><tr>{th}</tr></thead>"
    return f'<table class="{cls}">{head_row}<tbody>{body}</tbody></table>'


def _per_host(m: dict[str, Any]) -> str:
    first = m.get("first_published_per_host") or {}
    seen = m.get("first_seen_per_host") or {}
    rows = [[_e(h), _day(first.get(h)), _day(seen.get(h))] for h in {**seen, **first}]
    return _table(["host", "first published", "first seen"], rows)


def _holders(m: dict[str, Any], key: str, what: str) -> str:
    found = m.get(key)
    if found is None:
        return ""
    rows = [[_e(k), _e(v)] for k, v in sorted(found.items(), key=lambda kv: -kv[1])]
    return f"<h3>{_e(what)}</h3>" + _table([_e(what), "live copies"], rows)


def copy_table(copies: list[dict[str, Any]]) -> str:
    """Every copy: host, owner, path, status, dates, and a link to it on its host."""
    rows = []
    for c in copies:
        cells = []
        for key, _ in COPY_COLUMNS:
            value = c.get(key)
            if key in ("published_at", "first_seen", "gone_at"):
                cells.append(_day(value))
            elif key == "status":
                cells.append(f'<span class="status-{_e(value)}">{_e(value)}</span>')
            else:
                cells.append(
                    f"<code>{_e(value)}</code>" if key == "path" else _e(value)
                )
        url = c.get("url")
        cells.append(f'<a href="{_e(url)}">open</a>' if url else "–")
        rows.append(cells)
    head = [label for _, label in COPY_COLUMNS] + ["on its host"]
    return _table(head, rows, cls="copies", wrap=COPY_WRAP)


def _edge_rows(report: Report) -> str:
    g = report.graph
    if g is None:
        return ""
    rows = [
        [
            _e(g.label(e.parent)),
            _e(g.label(e.child)),
            _e(e.relation),
            _e(e.source),
            _e(f"{e.confidence:.2f}" if e.confidence is not None else "–"),
        ]
        for e in g.edges
    ]
    head = ["parent", "child", "relation", "source", "confidence"]
    opened = " open" if len(rows) <= EDGES_OPEN_UP_TO else ""
    return (
        f"<details{opened}><summary>Every edge ({len(rows)})</summary>"
        + _table(head, rows)
        + "</details>"
    )


def _contradictions(report: Report, pre: str) -> str:
    g = report.graph
    if g is None:
        return ""
    items = [
        f'<li data-contradiction="{_e(c.kind)}">'
        f"<strong>{_e(g.label(c.child))}</strong>: {_e(c.message)}</li>"
        for c in g.contradictions
    ]
    body = f"<ul>{''.join(items)}</ul>" if items else '<p class="none">None found.</p>'
    return section(pre + "contradictions", "Contradictions (lineage --check)", body)


def section(key: str, title: str, body: str) -> str:
    """A titled section of the page."""
    return f'<section id="{_e(key)}"><h2>{_e(title)}</h2>{body}</section>'


# --- pages ----------------------------------------------------------------------------


def _growth(report: Report, pre: str) -> str:
    points = dated(report.copies)
    label = "copies per host over their published dates"
    svg = growth_svg(points, label=label, ids=f"{pre}c-")
    published = sum(1 for _, _, p in points if p)
    counts = report.measures.get("growth_dated_by") or {
        "published_at": published,
        "first_seen": len(points) - published,
    }
    note = (
        f"{_e(counts.get('published_at', 0))} copies dated by their host's "
        f"published date, {_e(counts.get('first_seen', 0))} by when the "
        "crawler first saw them (no host date)."
    )
    return f'<figure class="chart">{svg}<figcaption>{note}</figcaption></figure>'


def _lineage(report: Report, engine: str, pre: str) -> str:
    if report.graph is None:
        return ""
    if not report.graph.edges:
        body = '<p class="none">No parent or child known.</p>'
    else:
        svg, used = graph_svg(report.graph, engine=engine)
        body = (
            f'<div class="graph-box" data-engine="{_e(used)}">{svg}</div>'
            '<p class="note">Parents above children. '
            "Solid: declared by a host or a file; dashed: inferred from "
            "the weights; thick and magenta: a declared edge the weights "
            "contradict. Thick border: the subject.</p>" + _edge_rows(report)
        )
    return section(pre + "lineage", "Lineage", body)


def report_body(
    report: Report, *, engine: str = "auto", level: int = 1, pre: str = ""
) -> list[str]:
    """The sections of one subject's report (``level`` 2 inside the index page).

    Args:
        report: what to show.
        engine: how to draw the lineage graph (``graph_svg.ENGINES``).
        level: the heading level of the subject's title.
        pre: a prefix making the section ids unique on a page of several.
    """
    m = report.measures
    what = " and its descendants" if report.descendants else ""
    head = f'<h{level} class="subject">Spread of {_e(report.title)}{what}</h{level}>'
    out = [head, section(pre + "numbers", "Headline numbers", headline(m))]
    growth = _growth(report, pre) + _per_host(m)
    out.append(section(pre + "growth", "Growth per host", growth))
    where = _holders(m, "jurisdictions", "jurisdiction") + _holders(
        m, "operators", "operator"
    )
    if where:
        out.append(section(pre + "where", "Where the live copies are", where))
    out.append(_lineage(report, engine, pre))
    copies = copy_table(report.copies)
    out.append(section(pre + "copies", f"Every copy ({len(report.copies)})", copies))
    out.append(_contradictions(report, pre))
    return [part for part in out if part]


def render_report(
    report: Report, *, engine: str = "auto", now: datetime | None = None
) -> str:
    """Return the whole page for one subject."""
    body = ["<main>", *report_body(report, engine=engine), method.section_html()]
    return _document(f"Spread of {report.title}", [*body, "</main>"], now=now)


def _ranking(index: IndexReport) -> str:
    data = [row.to_json() for row, _ in index.families]
    columns = [(k, label) for k, label in RANK_COLUMNS if any(k in d for d in data)]
    rows = []
    for i, (d, (_, rep)) in enumerate(zip(data, index.families, strict=True), 1):
        cells = [str(i), f'<a href="#family-{i}">{_e(rep.title)}</a>']
        for key, _ in columns:
            value = d.get(key)
            cells.append(_e(f"{value:,}" if isinstance(value, int) else value))
        cells.append(f"<code>{_e(d['sha256'][:12])}</code>")
        rows.append(cells)
    head = ["#", "first seen in", *(label for _, label in columns), "sha256"]
    return section(
        "ranking",
        f"The {len(rows)} most spread weights, by {index.by}",
        _table(head, rows, cls="ranking"),
    )


def render_index(index: IndexReport, *, now: datetime | None = None) -> str:
    """Return the page of the top families: a ranking, then each family's spread."""
    body = ["<main>", '<h1 class="subject">The most spread weights in the index</h1>']
    body.append(_ranking(index))
    for i, (row, rep) in enumerate(index.families, 1):
        parts = report_body(rep, level=2, pre=f"f{i}-")
        body.append(
            f'<article id="family-{i}" data-family="{_e(row.family.family)}">'
            + "".join(parts)
            + "</article>"
        )
    body += [method.section_html(), "</main>"]
    return _document("The most spread weights", body, now=now)
