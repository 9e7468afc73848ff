"""The report's growth chart: copies per host over their published dates, as SVG.

Each copy counts from the date its host published it (``published_at``), or,
where the host gives none, from when the crawler first saw it; the caption says
how many copies rest on each. matplotlib is imported inside the function with
its non-interactive Agg canvas, and the SVG keeps text as text (no embedded
font, nothing fetched), with a fixed hash salt so one index gives one file.

Example:
    >>> svg = growth_svg([("huggingface", datetime(2024, 1, 1, tzinfo=UTC), True)])
    ... # doctest: +SKIP
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

WIDTH_IN, HEIGHT_IN = 8.0, 3.6
_ID = re.compile(r'\b(id)="([^"]+)"')
_HREF = re.compile(r'((?:xlink:)?href)="#([^"]+)"')
_URL_REF = re.compile(r"url\(#([^)]+)\)")
HOST_COLOURS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
)


def growth_svg(
    dated: Sequence[tuple[str, datetime, bool]], *, label: str, ids: str = "c-"
) -> str:
    """Return an ``<svg>`` element: cumulative copies per host by date.

    Args:
        dated: (host, date, from the host's own date) per copy.
        label: the accessible name of the chart (escaped by the caller's page).
        ids: a prefix making the SVG's ids unique on the page.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "modelscan-report"}):
        fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        if dated:
            _draw(ax, dated, date2num)
            first = min(d for _, d, _ in dated)
            locator = AutoDateLocator(tz=first.tzinfo)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
            ax.legend(loc="upper left", frameon=False)
        else:
            ax.text(0.5, 0.5, "no copies", ha="center", transform=ax.transAxes)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("copies published")
        ax.grid(alpha=0.3)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return _inline(buf.getvalue(), label, ids)


def _draw(ax: Any, dated: Sequence[tuple[str, datetime, bool]], num: Any) -> None:
    by_host: dict[str, list[datetime]] = {}
    for host, at, _ in dated:
        by_host.setdefault(host, []).append(at)
    first = min(d for _, d, _ in dated)
    last = max(d for _, d, _ in dated)
    end = last + max((last - first) / 20, timedelta(days=1))
    for i, (host, dates) in enumerate(sorted(by_host.items())):
        xs, ys = _steps(sorted(dates), end)
        ax.step(
            num(xs),
            ys,
            where="post",
            label=f"{host} ({len(dates)})",
            linewidth=2,
            color=HOST_COLOURS[i % len(HOST_COLOURS)],
        )
    if len(by_host) > 1:
        xs, ys = _steps(sorted(d for _, d, _ in dated), end)
        ax.step(
            num(xs),
            ys,
            where="post",
            label=f"all hosts ({len(dated)})",
            color="black",
            linestyle="--",
            linewidth=1,
        )


def _steps(dates: list[datetime], end: datetime) -> tuple[list[datetime], list[int]]:
    """Cumulative counts: one step up at each date, flat until ``end``."""
    xs = [dates[0], *dates, end]
    ys = [0, *range(1, len(dates) + 1), len(dates)]
    return xs, ys


def unique_ids(svg: str, prefix: str) -> str:
    """Prefix every id of an SVG and each reference to one: several share a page.

    matplotlib and Graphviz number their ids from 1 in every file.
    """
    svg = _ID.sub(lambda m: f'{m.group(1)}="{prefix}{m.group(2)}"', svg)
    svg = _HREF.sub(lambda m: f'{m.group(1)}="#{prefix}{m.group(2)}"', svg)
    return _URL_REF.sub(lambda m: f"url(#{prefix}{m.group(1)})", svg)


def _inline(svg: str, label: str, ids: str) -> str:
    """Drop the XML prolog and DOCTYPE; name the chart for screen readers."""
    start = svg.index("<svg")
    body = unique_ids(svg[start:], ids)
    return body.replace(
        "<svg ", f'<svg role="img" aria-label="{label}" class="chart" ', 1
    )
