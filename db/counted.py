"""Counted dates and downloads: what the rank rows keep besides their counts.

``blob_counts`` and ``family_counts`` keep first published (the hosts' dates),
first and last seen (ours), and the families their downloads, so whole rows of
``blob_copies`` and ``spread --top`` read no copies. ``counters.py`` writes
them in the same upsert as the counts (one write of each table, in key order):

- dates are folded: :func:`blob_dates` and :func:`family_rollup` read back the
  occurrences of a saved page's repos, and :func:`fold` keeps the earlier first
  dates and the later last seen, which covers every write that can move them
  (inserts, touches, a repo or file dated later);
- downloads are summed over ``family_repos``, one row per (family, repo) with
  the figures counted for it; :func:`family_rollup` brings a page's repos'
  rows up to date and returns each family's difference, from the same read as
  its dates;
- what can move a date the other way is counted again from every copy:
  :func:`redate` (an occurrence dated by its repo given a later date of its
  own) and :func:`redo_families` (a blob moved to another family).

A crawl dated before an earlier one (a clock set back) leaves ``last_seen`` at
the later time until ``modelscan db recount``.

Example:
    >>> blob_dates(conn, repos=[repo_id])  # doctest: +SKIP
    {('ab12...',): {'first_published': ..., 'first_seen': ..., 'last_seen': ...}}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from modelscan.db.portable import chunks
from modelscan.db.tables import (
    BLOB_COUNTS,
    FAMILY_BLOBS,
    FAMILY_COUNTS,
    FAMILY_REPOS,
    FILES,
    REPOS,
)
from modelscan.db.upsert import dialect_insert
from modelscan.refs import LOCAL_HOST

Key = tuple[str, ...]
Deltas = dict[Key, dict[str, int]]
# the dates a counter row keeps over its occurrences, and how each one folds
EARLIEST = ("first_published", "first_seen")
LATEST = ("last_seen",)
DATES = (*EARLIEST, *LATEST)
Dates = dict[Key, dict[str, Any]]


def fold(held: Any, given: Any, name: str) -> ColumnElement[Any]:
    """The earlier (or, for a latest date, the later) of two dates; NULL is none."""
    take = given < held if name in EARLIEST else given > held
    return case((or_(held.is_(None), take), func.coalesce(given, held)), else_=held)


_PUBLISHED = func.coalesce(FILES.c.published_at, REPOS.c.published_at)
_DATE_AGGREGATES = (
    func.min(_PUBLISHED),
    func.min(FILES.c.first_seen),
    func.max(FILES.c.last_seen),
)


def blob_dates(
    conn: Connection, *, repos: Sequence[int] = (), files: Sequence[int] = ()
) -> Dates:
    """Per blob, the dates of its occurrences in ``repos`` and of ``files``."""
    out = _dates_of_blobs(conn, FILES.c.repo_id, repos)
    for key, held in _dates_of_blobs(conn, FILES.c.id, files).items():
        _earliest_of(out, key, [held[n] for n in DATES])
    return out


def _dates_of_blobs(conn: Connection, column: Any, keys: Sequence[Any]) -> Dates:
    """Per blob, the dates of its occurrences whose ``column`` is one of ``keys``."""
    out: Dates = {}
    for part in chunks(keys):
        stmt = (
            select(FILES.c.sha256, *_DATE_AGGREGATES)
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .where(column.in_(part), FILES.c.sha256.is_not(None))
            .group_by(FILES.c.sha256)
        )
        for sha, *values in conn.execute(stmt):
            _earliest_of(out, (sha,), values)
    return out


def _earliest_of(out: Dates, key: Key, values: Sequence[Any]) -> None:
    """Merge one row of :data:`_DATE_AGGREGATES` into ``out[key]``."""
    held = out.setdefault(key, dict.fromkeys(DATES))
    for name, value in zip(DATES, values, strict=True):
        if value is None:
            continue
        was = held[name]
        if was is None or (value < was if name in EARLIEST else value > was):
            held[name] = value


def family_rollup(conn: Connection, repos: Sequence[int]) -> tuple[Dates, Deltas]:
    """Per family, the dates (to fold in) and downloads change of ``repos``' copies.

    One read of the repos' hosted occurrences serves both, and ``family_repos``
    is brought up to date on the way. A family's downloads are summed over the
    distinct hosted repos holding one of its copies, live or not; each (family,
    repo) row keeps the figures last counted for it, so a repo's new count moves
    its families by the difference.
    """
    c = BLOB_COUNTS
    dates: Dates = {}
    now: dict[Key, tuple[int, int]] = {}
    for part in chunks(repos):
        stmt = (
            select(c.c.family, REPOS.c.id, REPOS.c.downloads,
                   REPOS.c.downloads_all_time, *_DATE_AGGREGATES)
            .select_from(FILES)
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .join(c, c.c.sha256 == FILES.c.sha256)
            .where(FILES.c.repo_id.in_(part), REPOS.c.host != LOCAL_HOST)
            .group_by(c.c.family, REPOS.c.id, REPOS.c.downloads,
                      REPOS.c.downloads_all_time)
        )  # fmt: skip
        for family, rid, downloads, all_time, *values in conn.execute(stmt):
            _earliest_of(dates, (family,), values)
            now[(family, rid)] = (int(downloads or 0), int(all_time or 0))
    return dates, _sync_downloads(conn, repos, now)


def _sync_downloads(
    conn: Connection, repos: Sequence[int], now: dict[Key, tuple[int, int]]
) -> Deltas:
    """Write ``repos``' (family, repo) figures to ``family_repos``; return the change.

    ``now`` holds them as read; the change is per family.
    """
    fr = FAMILY_REPOS
    held: dict[Key, tuple[int, int]] = {}
    for part in chunks(repos):
        stored = select(
            fr.c.family, fr.c.repo_id, fr.c.downloads, fr.c.downloads_all_time
        ).where(fr.c.repo_id.in_(part))
        for family, rid, downloads, all_time in conn.execute(stored):
            held[(family, rid)] = (int(downloads), int(all_time))
    out: Deltas = defaultdict(lambda: {"downloads": 0, "downloads_all_time": 0})
    changed = {k: v for k, v in now.items() if held.get(k) != v}
    for k in set(changed) | (set(held) - set(now)):
        new, old = now.get(k, (0, 0)), held.get(k, (0, 0))
        d = out[(k[0],)]
        d["downloads"] += new[0] - old[0]
        d["downloads_all_time"] += new[1] - old[1]
    if changed:
        stmt = dialect_insert(conn, fr)
        stmt = stmt.on_conflict_do_update(
            index_elements=["family", "repo_id"],
            set_={n: stmt.excluded[n] for n in ("downloads", "downloads_all_time")},
        )
        conn.execute(stmt, [
            {"family": f, "repo_id": r, "downloads": d, "downloads_all_time": a}
            for (f, r), (d, a) in sorted(changed.items())
        ])  # fmt: skip
    _forget(conn, sorted(set(held) - set(now)))
    return {k: d for k, d in out.items() if any(d.values())}


def _forget(conn: Connection, keys: list[Key]) -> None:
    """Delete (family, repo) rows no copy backs any more."""
    if keys:
        fr = FAMILY_REPOS
        match = and_(fr.c.family == bindparam("f"), fr.c.repo_id == bindparam("r"))
        conn.execute(delete(fr).where(match), [{"f": f, "r": r} for f, r in keys])


def families(conn: Connection, shas: list[str]) -> dict[str, str]:
    """The family each of ``shas`` counts in now."""
    out = {}
    for part in chunks(sorted(shas)):
        stmt = select(BLOB_COUNTS.c.sha256, BLOB_COUNTS.c.family).where(
            BLOB_COUNTS.c.sha256.in_(part)
        )
        out.update({sha: fam for sha, fam in conn.execute(stmt)})
    return out


def redate(conn: Connection, shas: Iterable[str]) -> None:
    """Date blobs (and their families) again from all their occurrences.

    Folding only ever moves a first date earlier and a last one later; this is
    for a change that can move them the other way: an occurrence dated by its
    repo given a date of its own, later than the repo's.
    """
    keys = sorted(set(shas))
    if not keys:
        return
    dates: Dates = {(k,): dict.fromkeys(DATES) for k in keys}
    dates.update(_dates_of_blobs(conn, FILES.c.sha256, keys))
    set_values(conn, BLOB_COUNTS, dates, {})
    redo_families(conn, sorted(set(families(conn, keys).values())))


def redo_families(conn: Connection, names: Sequence[str]) -> None:
    """Count the dates and downloads of ``names`` again from their copies."""
    if not names:
        return
    m, fr = FAMILY_BLOBS, FAMILY_REPOS
    dates: Dates = {(f,): dict.fromkeys(DATES) for f in names}
    downloads: Deltas = {(f,): {"downloads": 0, "downloads_all_time": 0}
                         for f in names}  # fmt: skip
    for part in chunks(names):
        copies = (
            select(m.c.family).select_from(m)
            .join(FILES, FILES.c.sha256 == m.c.sha256)
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .where(m.c.family.in_(part), REPOS.c.host != LOCAL_HOST)
        )  # fmt: skip
        for family, *values in conn.execute(
            copies.add_columns(*_DATE_AGGREGATES).group_by(m.c.family)
        ):
            dates[(family,)] = dict(zip(DATES, values, strict=True))
        conn.execute(delete(fr).where(fr.c.family.in_(part)))
        pairs = copies.add_columns(
            REPOS.c.id,
            func.coalesce(REPOS.c.downloads, 0),
            func.coalesce(REPOS.c.downloads_all_time, 0),
        ).distinct()
        rows = sorted(conn.execute(pairs).all())
        if rows:
            conn.execute(insert(fr), [
                {"family": f, "repo_id": r, "downloads": d, "downloads_all_time": a}
                for f, r, d, a in rows
            ])  # fmt: skip
        for family, _, d, a in rows:
            downloads[(family,)]["downloads"] += int(d)
            downloads[(family,)]["downloads_all_time"] += int(a)
    set_values(conn, FAMILY_COUNTS, dates, downloads)


def set_values(conn: Connection, table: Table, dates: Dates, totals: Deltas) -> None:
    """Set rows' dates (and totals) to the values given, in key order."""
    (key,) = (c.name for c in table.primary_key.columns)
    names = [*DATES, *sorted({n for d in totals.values() for n in d})]
    stmt = (
        update(table)
        .where(table.c[key] == bindparam("k"))
        .values({n: bindparam(f"v_{n}", type_=table.c[n].type) for n in names})
    )
    rows = [
        {"k": k[0], **{f"v_{n}": {**dates[k], **totals.get(k, {})}[n] for n in names}}
        for k in sorted(dates)
    ]
    if rows:
        conn.execute(stmt, rows)
