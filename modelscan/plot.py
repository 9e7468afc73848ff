"""Draw live copies over time per host (``modelscan spread --plot FILE.png``).

matplotlib is imported inside the function, with its non-interactive Agg
canvas, so the CLI starts fast and no display is needed.

Example:
    >>> plot_live_copies(spread.timeline(), "spread.png", title="all-MiniLM-L6-v2")
    ... # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.5, 100  # 800 x 450 pixels


def plot_live_copies(
    timeline: Mapping[str, Sequence[tuple[datetime, int]]],
    path: str | Path,
    *,
    title: str,
    until: datetime | None = None,
    dated_by: str | None = None,
) -> Path:
    """Write a PNG of live copies per host (and in total) as step lines.

    Args:
        timeline: host -> (time, live copies from then on), in time order.
        path: the PNG to write.
        title: the chart's title (the subject).
        until: where the lines end (default: the last change, plus a margin).
        dated_by: a note under the axis on what the dates are (hosts' or ours).

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    changes = [t for points in timeline.values() for t, _ in points]
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if changes:
        first, last = min(changes), max(changes)
        end = until or last + max((last - first) / 10, timedelta(days=1))
        for host, points in timeline.items():
            xs = date2num([t for t, _ in points] + [end])
            ys = [n for _, n in points] + [points[-1][1]]
            ax.step(xs, ys, where="post", label=host, linewidth=2)
        total = _total(timeline)
        if len(timeline) > 1:
            ax.step(
                date2num([t for t, _ in total] + [end]),
                [n for _, n in total] + [total[-1][1]],
                where="post",
                label="all hosts",
                color="black",
                linestyle="--",
            )
        ax.xaxis_date(tz=first.tzinfo)
        locator = AutoDateLocator(tz=first.tzinfo)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        ax.legend(loc="best")
    else:
        ax.text(
            0.5,
            0.5,
            "no copies in the index",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("live copies")
    ax.set_title(f"Live copies over time: {title}")
    if dated_by:
        ax.set_xlabel(dated_by, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png", dpi=DPI)
    return out


def _total(
    timeline: Mapping[str, Sequence[tuple[datetime, int]]],
) -> list[tuple[datetime, int]]:
    """Sum the per-host step functions into one."""
    deltas: dict[datetime, int] = {}
    for points in timeline.values():
        before = 0
        for t, n in points:
            deltas[t] = deltas.get(t, 0) + n - before
            before = n
    out, running = [], 0
    for t in sorted(deltas):
        running += deltas[t]
        out.append((t, running))
    return out
