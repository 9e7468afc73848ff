"""What a report shows, gathered through the lineage library (never SQL).

:func:`gather` asks ``modelscan.lineage`` for a subject's spread, its lineage
graph with the contradictions ``lineage --check`` finds, and the repos the
copies sit in; :func:`gather_top` does the same for the most spread families.
The renderer (``modelscan/report/page.py``) only formats what is collected here.

Example:
    >>> data = gather(store, resolve_subject(store, "hf:org/m"))  # doctest: +SKIP
    >>> data.measures["takedown_cost"]  # doctest: +SKIP
    3
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from modelscan.hostinfo import host_table
from modelscan.lineage.graph import LineageGraph, lineage
from modelscan.lineage.rows import LineageIndex
from modelscan.lineage.spread import Spread, TopRow, spread, top
from modelscan.lineage.subjects import Subject, resolve_subject
from modelscan.refs import HOST_SITES

COPY_KEYS = (
    "kind",
    "host",
    "owner",
    "repo",
    "path",
    "sha256",
    "status",
    "first_seen",
    "published_at",
    "gone_at",
    "url",
)


@dataclass(frozen=True, slots=True)
class Report:
    """One subject's report: its measures, every copy, its lineage graph."""

    title: str
    measures: dict[str, Any]  # exactly ``Spread.to_json()``
    copies: list[dict[str, Any]]  # one dict per copy, keys :data:`COPY_KEYS`
    graph: LineageGraph | None
    descendants: bool = False


@dataclass(frozen=True, slots=True)
class IndexReport:
    """The whole index: the top families, each with its own spread."""

    by: str
    families: list[tuple[TopRow, Report]] = field(default_factory=list)


def safe_url(url: str | None) -> str | None:
    """Return ``url`` when it is an http(s) URL (an index value is hostile input)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


def repo_url(host: str, host_id: str, listed: str | None) -> str | None:
    """The repo's page on its host: the URL the host listed, else the site's form."""
    found = safe_url(listed)
    if found:
        return found
    site = HOST_SITES.get(host)
    return f"{site}/{quote(host_id, safe='/')}" if site else None


def copy_rows(result: Spread) -> list[dict[str, Any]]:
    """Every copy (``Spread.copies_json``), its link made safe, oldest first.

    A link the host listed is kept only if it is http(s); else the site's own
    form of the repo's URL stands in.
    """
    rows = result.copies_json()
    for row in rows:
        row["url"] = repo_url(row["host"], row["host_id"], row.get("url"))
    return sorted(rows, key=_copy_order)


def _copy_order(row: dict[str, Any]) -> tuple[str, str, str, str]:
    when = row.get("published_at") or row.get("first_seen") or ""
    return (str(when), str(row.get("host")), str(row.get("repo")), str(row["path"]))


def gather(
    index: LineageIndex,
    subject: Subject,
    *,
    descendants: bool = False,
    with_graph: bool = True,
) -> Report:
    """Collect a subject's spread, copies and checked lineage graph.

    Raises:
        StoreError: the index knows nothing of the subject.
    """
    result = spread(index, subject, descendants=descendants, hosts=host_table())
    graph = lineage(index, subject, check=True) if with_graph else None
    return Report(
        title=subject.label,
        measures=result.to_json(),
        copies=copy_rows(result),
        graph=graph,
        descendants=descendants,
    )


def gather_top(index: LineageIndex, n: int, *, by: str = "live-copies") -> IndexReport:
    """Collect the ``n`` most spread families, each with its spread (no graph).

    Raises:
        StoreError: ``by`` is not a ranking ``spread --top`` knows.
    """
    out = IndexReport(by=by)
    for row in top(index, n, by=by):
        subject = resolve_subject(index, row.sha256)
        report = gather(index, subject, with_graph=False)
        title = row.label or subject.label
        out.families.append((row, _retitled(report, title)))
    return out


def _retitled(report: Report, title: str) -> Report:
    return Report(title, report.measures, report.copies, report.graph)


def dated(rows: Iterable[dict[str, Any]]) -> list[tuple[str, datetime, bool]]:
    """(host, date, published) of each copy: its published date, else first seen."""
    out = []
    for row in rows:
        text = row.get("published_at") or row.get("first_seen")
        if text:
            out.append((str(row["host"]), _parse(text), bool(row.get("published_at"))))
    return out


def _parse(text: str | datetime) -> datetime:
    return text if isinstance(text, datetime) else datetime.fromisoformat(text)
