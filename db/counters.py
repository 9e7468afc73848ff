"""Rank counters: per-blob and per-family copy counts kept as the index changes.

``blob_copies ORDER BY live_copies DESC LIMIT 100`` and ``spread --top`` read
these tables through an index instead of grouping every occurrence. Each write
that changes what they count calls one function here in its own transaction:
a page's file diff (:func:`count_files`), a repo whose owner changed
(:func:`move_repo`), a fingerprint that gives a blob its ``weights_id`` and so
moves it into another family (:func:`refamily`). Lineage links change nothing
counted.

Counts are added as deltas (``SET n = n + :d``), the rows read back after the
write holds their locks, and a distinct count (hosts, accounts) moves by one
when a row below it goes from zero to non-zero or back. On PostgreSQL two
writers of one blob queue on its counter rows, always taken in key order.
:func:`recount` rebuilds everything from the occurrences (the migration and
``modelscan db recount`` run it); ``tests/db/test_counters.py`` checks the two
agree row for row.

An account is ``(host, owner)``, the owner being the repo's, else its host id;
families leave out host ``local`` (the user's own copies), as spread does.

Dates and downloads are counted too. Rather than one hook per write path
(inserts, touches, a repo or a file dated later), a saved page names its repos
(``count_files(..., repos=)``) and their occurrences are read back once,
grouped by blob and by family, and folded into the rows in the same upsert as
the counts: first dates only ever move earlier and last seen later, so every
write that can change them is covered by reading the page's repos. Downloads
are summed over ``family_repos``, one row per (family, repo) with the figures
counted for it, so a repo's new count moves its families by the difference.
Two changes can move a date the other way and are recomputed from every copy:
a blob moving family (:func:`refamily`) and an occurrence dated by its repo
given a later date of its own (:func:`redate`). A crawl dated before an
earlier one (a clock set back) leaves ``last_seen`` at the later time until a
recount.

Example:
    >>> count_files(conn, [("ab12...", repo_id, 1, 1)])  # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
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
    text,
    update,
)

from modelscan.db.portable import chunks
from modelscan.db.tables import (
    BLOB_ACCOUNTS,
    BLOB_COUNTS,
    BLOB_HOSTS,
    BLOBS,
    FAMILY_ACCOUNTS,
    FAMILY_BLOBS,
    FAMILY_COUNTS,
    FAMILY_HOSTS,
    FAMILY_REPOS,
    FILES,
    REPOS,
)
from modelscan.db.upsert import dialect_insert
from modelscan.refs import LOCAL_HOST

Key = tuple[str, ...]
Deltas = dict[Key, dict[str, int]]
# (sha256, repo id, live copies added, copies added) for one occurrence
FileDelta = tuple[str | None, int, int, int]
# the dates a counter row keeps over its occurrences, and how each one folds
EARLIEST = ("first_published", "first_seen")
LATEST = ("last_seen",)
DATES = (*EARLIEST, *LATEST)
Dates = dict[Key, dict[str, Any]]

COUNTER_TABLES = (
    BLOB_COUNTS,
    BLOB_HOSTS,
    BLOB_ACCOUNTS,
    FAMILY_COUNTS,
    FAMILY_BLOBS,
    FAMILY_HOSTS,
    FAMILY_ACCOUNTS,
    FAMILY_REPOS,
)
_KEYS: dict[str, Key] = {
    t.name: tuple(c.name for c in t.primary_key.columns) for t in COUNTER_TABLES
}


def _step(before: int, after: int) -> int:
    """+1 when a count becomes non-zero, -1 when it falls to zero, else 0."""
    return int(after > 0) - int(before > 0)


def _bump(
    conn: Connection,
    table: Table,
    deltas: Deltas,
    *,
    insert_extra: Mapping[Key, Mapping[str, Any]] | None = None,
    drop_empty: bool = False,
    dates: Dates | None = None,
) -> dict[Key, tuple[dict[str, int], dict[str, int]]]:
    """Add ``deltas`` to ``table``'s rows (created at zero); return (old, new).

    Rows are written in key order, so two writers never wait on each other in a
    cycle, and returned as written, while this transaction holds them. ``drop_empty``
    deletes rows left with no copies (a blob moved to another family). ``dates``
    are folded into the rows' dates in the same statement (the earlier or the
    later of the two, see :data:`EARLIEST`), so each table is written once.
    """
    dates = dates or {}
    if not deltas and not dates:
        return {}
    key = _KEYS[table.name]
    cols = sorted({c for d in deltas.values() for c in d})
    rows = []
    for k in sorted(set(deltas) | set(dates)):
        row: dict[str, Any] = dict(zip(key, k, strict=True))
        row.update((insert_extra or {}).get(k, {}))
        row.update({c: deltas.get(k, {}).get(c, 0) for c in cols})
        if dates:
            row.update({c: dates.get(k, {}).get(c) for c in DATES})
        rows.append(row)
    stmt = dialect_insert(conn, table)
    set_: dict[str, Any] = {c: table.c[c] + stmt.excluded[c] for c in cols}
    if dates:
        set_.update({c: _fold(table.c[c], stmt.excluded[c], c) for c in DATES})
    stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=set_).returning(
        *table.c
    )
    out = {}
    # one multi-row statement per batch (insertmanyvalues); rows come back in any
    # order, named by their key
    for r in conn.execute(stmt, rows):
        m = r._mapping
        k = tuple(m[c] for c in key)
        new = {c: m[c] for c in m if c not in key and c != "family" and c not in DATES}
        out[k] = ({c: new[c] - deltas.get(k, {}).get(c, 0) for c in new}, new)
    if drop_empty:
        empty = [k for k, (_, new) in out.items() if new["copies"] <= 0]
        _delete(conn, table, empty)
    return out


def _fold(held: Any, given: Any, name: str) -> ColumnElement[Any]:
    """The earlier (or, for a latest date, the later) of two dates; NULL is none."""
    take = given < held if name in EARLIEST else given > held
    return case((or_(held.is_(None), take), func.coalesce(given, held)), else_=held)


def _delete(conn: Connection, table: Table, keys: list[Key]) -> None:
    if not keys:
        return
    key = _KEYS[table.name]
    match = and_(*(table.c[c] == bindparam(f"k_{c}") for c in key))
    rows = [{f"k_{c}": v for c, v in zip(key, k, strict=True)} for k in sorted(keys)]
    conn.execute(delete(table).where(match), rows)


def ensure_blobs(conn: Connection, shas: Iterable[str]) -> None:
    """Give each blob of ``shas`` its zero counters (every blob is ranked)."""
    family = func.coalesce(BLOBS.c.weights_id, BLOBS.c.sha256)
    for part in chunks(sorted(set(shas))):
        held = select(BLOB_COUNTS.c.sha256).where(BLOB_COUNTS.c.sha256.in_(part))
        missing = sorted(set(part) - set(conn.execute(held).scalars()))
        if not missing:  # the common case: reading is cheaper than a no-op insert
            continue
        src = (  # in key order, as every counter write (see _bump)
            select(BLOBS.c.sha256, family)
            .where(BLOBS.c.sha256.in_(missing))
            .order_by(BLOBS.c.sha256)
        )
        stmt = dialect_insert(conn, BLOB_COUNTS).from_select(["sha256", "family"], src)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))


def count_files(
    conn: Connection, changes: Iterable[FileDelta], *, repos: Iterable[int] = ()
) -> None:
    """Count occurrences added, closed or given a sha256 in this transaction.

    ``repos`` are repos whose occurrences or whose own dates and downloads were
    written in this transaction (a saved page's): their occurrences' dates and
    their downloads are folded into the blob and family rows as they are counted.
    """
    changes = [c for c in changes if c[0] is not None and (c[2] or c[3])]
    repo_ids = sorted(set(repos))
    if not changes and not repo_ids:
        return
    accounts = _accounts(conn, {rid for _, rid, _, _ in changes})
    deltas: Deltas = defaultdict(lambda: {"live_copies": 0, "copies": 0})
    for sha, rid, live, copies in changes:
        d = deltas[(str(sha), *accounts[rid])]
        d["live_copies"] += live
        d["copies"] += copies
    count_accounts(conn, deltas, repos=repo_ids)


def _accounts(conn: Connection, repo_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    owner = func.coalesce(REPOS.c.owner, REPOS.c.host_id)
    out = {}
    for part in chunks(sorted(repo_ids)):
        stmt = select(REPOS.c.id, REPOS.c.host, owner).where(REPOS.c.id.in_(part))
        out.update({rid: (host, own) for rid, host, own in conn.execute(stmt)})
    return out


def count_accounts(
    conn: Connection, deltas: Deltas, *, repos: Sequence[int] = ()
) -> None:
    """Add per-(sha256, host, owner) deltas to the blob and family counters.

    ``repos``: repos whose dates and downloads to fold in (see :func:`count_files`).
    """
    deltas = {k: d for k, d in deltas.items() if any(d.values())}
    if not deltas and not repos:
        return
    dates = _blob_dates(conn, repos)
    ensure_blobs(conn, {k[0] for k in deltas} | {k[0] for k in dates})
    accounts = _bump(conn, BLOB_ACCOUNTS, deltas, drop_empty=True)
    hosts: Deltas = defaultdict(lambda: {"live_copies": 0})
    blobs: Deltas = defaultdict(
        lambda: {"live_copies": 0, "total_copies": 0, "hosts": 0, "owners": 0}
    )
    for (sha, host, _), d in deltas.items():
        hosts[(sha, host)]["live_copies"] += d["live_copies"]
        blobs[(sha,)]["live_copies"] += d["live_copies"]
        blobs[(sha,)]["total_copies"] += d["copies"]
    for (sha, _, _), (old, new) in accounts.items():
        blobs[(sha,)]["owners"] += _step(old["live_copies"], new["live_copies"])
    for (sha, _), (old, new) in _bump(conn, BLOB_HOSTS, hosts).items():
        blobs[(sha,)]["hosts"] += _step(old["live_copies"], new["live_copies"])
    extra = {k: {"family": k[0]} for k in (*blobs, *dates)}  # rows are ensured
    _bump(conn, BLOB_COUNTS, blobs, insert_extra=extra, dates=dates)
    families = _families(conn, [k[0] for k in blobs])
    hosted: Deltas = defaultdict(lambda: {"live_copies": 0, "copies": 0})
    for (sha, host, owner), d in deltas.items():
        if host != LOCAL_HOST:
            h = hosted[(families[sha], sha, host, owner)]
            h["live_copies"] += d["live_copies"]
            h["copies"] += d["copies"]
    _count_families(conn, hosted, repos=repos)


_PUBLISHED = func.coalesce(FILES.c.published_at, REPOS.c.published_at)
_DATE_AGGREGATES = (
    func.min(_PUBLISHED),
    func.min(FILES.c.first_seen),
    func.max(FILES.c.last_seen),
)


def _blob_dates(conn: Connection, repos: Sequence[int]) -> Dates:
    """Per blob, the dates of its occurrences in ``repos`` (to fold in)."""
    out: Dates = {}
    for part in chunks(repos):
        stmt = (
            select(FILES.c.sha256, *_DATE_AGGREGATES)
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .where(FILES.c.repo_id.in_(part), FILES.c.sha256.is_not(None))
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


def _family_dates(conn: Connection, repos: Sequence[int]) -> Dates:
    """Per family, the dates of its hosted occurrences in ``repos``."""
    out: Dates = {}
    c = BLOB_COUNTS
    for part in chunks(repos):
        stmt = (
            select(c.c.family, *_DATE_AGGREGATES)
            .select_from(FILES)
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .join(c, c.c.sha256 == FILES.c.sha256)
            .where(FILES.c.repo_id.in_(part), REPOS.c.host != LOCAL_HOST)
            .group_by(c.c.family)
        )
        for family, *values in conn.execute(stmt):
            _earliest_of(out, (family,), values)
    return out


def _family_downloads(conn: Connection, repos: Sequence[int]) -> Deltas:
    """Bring ``family_repos`` up to date for ``repos``; return per-family deltas.

    A family's downloads are summed over the distinct hosted repos holding one
    of its copies, live or not; each (family, repo) row keeps the figures last
    counted for it, so a repo's new count moves its families by the difference.
    """
    c, fr = BLOB_COUNTS, FAMILY_REPOS
    now: dict[Key, tuple[int, int]] = {}
    held: dict[Key, tuple[int, int]] = {}
    for part in chunks(repos):
        pairs = (
            select(c.c.family, REPOS.c.id, REPOS.c.downloads,
                   REPOS.c.downloads_all_time)
            .distinct()
            .select_from(FILES)
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .join(c, c.c.sha256 == FILES.c.sha256)
            .where(FILES.c.repo_id.in_(part), REPOS.c.host != LOCAL_HOST)
        )  # fmt: skip
        for family, rid, downloads, all_time in conn.execute(pairs):
            now[(family, rid)] = (int(downloads or 0), int(all_time or 0))
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
    _delete(conn, fr, sorted(set(held) - set(now)))
    return {k: d for k, d in out.items() if any(d.values())}


def _families(conn: Connection, shas: list[str]) -> dict[str, str]:
    out = {}
    for part in chunks(sorted(shas)):
        stmt = select(BLOB_COUNTS.c.sha256, BLOB_COUNTS.c.family).where(
            BLOB_COUNTS.c.sha256.in_(part)
        )
        out.update({sha: fam for sha, fam in conn.execute(stmt)})
    return out


def _count_families(
    conn: Connection, hosted: Deltas, *, repos: Sequence[int] = ()
) -> None:
    """Add per-(family, sha256, host, owner) deltas to the family counters.

    ``repos``: repos whose dates and downloads to fold in (see :func:`count_files`).
    """
    accounts: Deltas = defaultdict(lambda: {"live_copies": 0, "copies": 0})
    members: Deltas = defaultdict(lambda: {"copies": 0})
    for (family, sha, host, owner), d in hosted.items():
        a = accounts[(family, host, owner)]
        a["live_copies"] += d["live_copies"]
        a["copies"] += d["copies"]
        members[(family, sha)]["copies"] += d["copies"]
    accounts = {k: d for k, d in accounts.items() if any(d.values())}
    members = {k: d for k, d in members.items() if any(d.values())}
    names = ("live_copies", "copies", "owners", "takedown_cost")
    hosts: Deltas = defaultdict(lambda: dict.fromkeys(names, 0))
    for (family, host, _), (old, new) in _bump(
        conn, FAMILY_ACCOUNTS, accounts, drop_empty=True
    ).items():
        h = hosts[(family, host)]
        h["live_copies"] += new["live_copies"] - old["live_copies"]
        h["copies"] += new["copies"] - old["copies"]
        h["owners"] += _step(old["copies"], new["copies"])
        h["takedown_cost"] += _step(old["live_copies"], new["live_copies"])
    totals: Deltas = defaultdict(lambda: dict.fromkeys((*names, "hosts", "blobs"), 0))
    for (family, _), (old, new) in _bump(
        conn, FAMILY_BLOBS, members, drop_empty=True
    ).items():
        totals[(family,)]["blobs"] += _step(old["copies"], new["copies"])
    for (family, _), (old, new) in _bump(
        conn, FAMILY_HOSTS, hosts, drop_empty=True
    ).items():
        t = totals[(family,)]
        for name in names:
            t[name] += new[name] - old[name]
        t["hosts"] += _step(old["copies"], new["copies"])
    dates = _family_dates(conn, repos) if repos else {}
    for k, d in (_family_downloads(conn, repos) if repos else {}).items():
        totals[k].update(d)
    _bump(conn, FAMILY_COUNTS, totals, drop_empty=True, dates=dates)


def move_repo(conn: Connection, repo_id: int, old: tuple[str, str]) -> None:
    """Move a repo's occurrences from account ``old`` to the repo's account now."""
    new = _accounts(conn, [repo_id])[repo_id]
    if new == old:
        return
    live = func.count(FILES.c.id).filter(FILES.c.gone_at.is_(None))
    stmt = (
        select(FILES.c.sha256, live, func.count(FILES.c.id))
        .where(FILES.c.repo_id == repo_id, FILES.c.sha256.is_not(None))
        .group_by(FILES.c.sha256)
    )
    deltas: Deltas = {}
    for sha, n_live, n in conn.execute(stmt):
        deltas[(sha, *old)] = {"live_copies": -n_live, "copies": -n}
        deltas[(sha, *new)] = {"live_copies": n_live, "copies": n}
    count_accounts(conn, deltas)


def refamily(conn: Connection, shas: Iterable[str]) -> None:
    """Move blobs whose ``weights_id`` changed into their family now, with counts."""
    ensure_blobs(conn, shas)
    now = func.coalesce(BLOBS.c.weights_id, BLOBS.c.sha256)
    moved: set[str] = set()
    for part in chunks(sorted(set(shas))):
        stmt = (
            select(BLOB_COUNTS.c.sha256, BLOB_COUNTS.c.family, now)
            .join(BLOBS, BLOBS.c.sha256 == BLOB_COUNTS.c.sha256)
            .where(BLOB_COUNTS.c.sha256.in_(part), BLOB_COUNTS.c.family != now)
        )
        for sha, old, new in conn.execute(stmt).all():
            if _move_blob(conn, sha, old, new):
                moved |= {old, new}
    _redo_families(conn, sorted(moved))


def _move_blob(conn: Connection, sha: str, old: str, new: str) -> bool:
    moved = conn.execute(
        update(BLOB_COUNTS)
        .where(BLOB_COUNTS.c.sha256 == sha, BLOB_COUNTS.c.family == old)
        .values(family=new)
    )
    if not moved.rowcount:
        return False  # another writer moved it first
    a = BLOB_ACCOUNTS
    stmt = select(a.c.host, a.c.owner, a.c.live_copies, a.c.copies).where(
        a.c.sha256 == sha, a.c.host != LOCAL_HOST
    )
    hosted: Deltas = {}
    for host, owner, live, copies in conn.execute(stmt):
        hosted[(old, sha, host, owner)] = {"live_copies": -live, "copies": -copies}
        hosted[(new, sha, host, owner)] = {"live_copies": live, "copies": copies}
    _count_families(conn, hosted)
    return True


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
    for part in chunks(keys):
        stmt = (
            select(FILES.c.sha256, *_DATE_AGGREGATES)
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .where(FILES.c.sha256.in_(part))
            .group_by(FILES.c.sha256)
        )
        for sha, *values in conn.execute(stmt):
            dates[(sha,)] = dict(zip(DATES, values, strict=True))
    _set_dates(conn, BLOB_COUNTS, dates, {})
    _redo_families(conn, sorted(set(_families(conn, keys).values())))


def _redo_families(conn: Connection, families: Sequence[str]) -> None:
    """Count the dates and downloads of ``families`` again from their copies."""
    if not families:
        return
    m, fr = FAMILY_BLOBS, FAMILY_REPOS
    dates: Dates = {(f,): dict.fromkeys(DATES) for f in families}
    downloads: Deltas = {(f,): {"downloads": 0, "downloads_all_time": 0}
                         for f in families}  # fmt: skip
    for part in chunks(families):
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
    _set_dates(conn, FAMILY_COUNTS, dates, downloads)


def _set_dates(conn: Connection, table: Table, dates: Dates, totals: Deltas) -> None:
    """Set rows' dates (and totals) to the values given, in key order."""
    (key,) = _KEYS[table.name]
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


# The full recount: the same counts from the occurrences, table by table. The
# migrations, `modelscan db recount` and the tests run these statements.
_DATES_SQL = (
    "MIN(COALESCE(f.published_at, r.published_at)) AS first_published, "
    "MIN(f.first_seen) AS first_seen, MAX(f.last_seen) AS last_seen"
)
_SET_DATES = ", ".join(f"{n} = d.{n}" for n in ("first_published", "first_seen",
                                                 "last_seen"))  # fmt: skip
RECOUNT_SQL = (
    """INSERT INTO blob_accounts (sha256, host, owner, live_copies, copies)
SELECT f.sha256, r.host, COALESCE(r.owner, r.host_id),
       COUNT(CASE WHEN f.gone_at IS NULL THEN f.id END), COUNT(f.id)
FROM files AS f
JOIN blobs AS b ON b.sha256 = f.sha256
JOIN repos AS r ON r.id = f.repo_id
GROUP BY f.sha256, r.host, COALESCE(r.owner, r.host_id)""",
    """INSERT INTO blob_hosts (sha256, host, live_copies)
SELECT sha256, host, SUM(live_copies) FROM blob_accounts GROUP BY sha256, host""",
    """INSERT INTO blob_counts (sha256, family, live_copies, total_copies, hosts,
                         owners)
SELECT b.sha256, COALESCE(b.weights_id, b.sha256),
       COALESCE(SUM(a.live_copies), 0), COALESCE(SUM(a.copies), 0),
       COUNT(DISTINCT CASE WHEN a.live_copies > 0 THEN a.host END),
       COUNT(CASE WHEN a.live_copies > 0 THEN a.host END)
FROM blobs AS b
LEFT JOIN blob_accounts AS a ON a.sha256 = b.sha256
GROUP BY b.sha256, b.weights_id""",
    f"""UPDATE blob_counts SET {_SET_DATES}
FROM (SELECT f.sha256 AS k, {_DATES_SQL}
      FROM files AS f JOIN repos AS r ON r.id = f.repo_id
      WHERE f.sha256 IS NOT NULL
      GROUP BY f.sha256) AS d
WHERE d.k = blob_counts.sha256""",
    """INSERT INTO family_accounts (family, host, owner, copies, live_copies)
SELECT c.family, a.host, a.owner, SUM(a.copies), SUM(a.live_copies)
FROM blob_accounts AS a
JOIN blob_counts AS c ON c.sha256 = a.sha256
WHERE a.host <> 'local'
GROUP BY c.family, a.host, a.owner""",
    """INSERT INTO family_blobs (family, sha256, copies)
SELECT c.family, a.sha256, SUM(a.copies)
FROM blob_accounts AS a
JOIN blob_counts AS c ON c.sha256 = a.sha256
WHERE a.host <> 'local'
GROUP BY c.family, a.sha256""",
    """INSERT INTO family_hosts (family, host, copies, live_copies, owners,
                          takedown_cost)
SELECT family, host, SUM(copies), SUM(live_copies), COUNT(*),
       COUNT(CASE WHEN live_copies > 0 THEN owner END)
FROM family_accounts
GROUP BY family, host""",
    """INSERT INTO family_counts (family, blobs, copies, live_copies, hosts, owners,
                           takedown_cost)
SELECT h.family,
       (SELECT COUNT(*) FROM family_blobs AS m WHERE m.family = h.family),
       SUM(h.copies), SUM(h.live_copies), COUNT(*), SUM(h.owners),
       SUM(h.takedown_cost)
FROM family_hosts AS h
GROUP BY h.family""",
    """INSERT INTO family_repos (family, repo_id, downloads, downloads_all_time)
SELECT DISTINCT m.family, r.id, COALESCE(r.downloads, 0),
       COALESCE(r.downloads_all_time, 0)
FROM family_blobs AS m
JOIN files AS f ON f.sha256 = m.sha256
JOIN repos AS r ON r.id = f.repo_id
WHERE r.host <> 'local'""",
    f"""UPDATE family_counts SET {_SET_DATES}
FROM (SELECT m.family AS k, {_DATES_SQL}
      FROM family_blobs AS m
      JOIN files AS f ON f.sha256 = m.sha256
      JOIN repos AS r ON r.id = f.repo_id
      WHERE r.host <> 'local'
      GROUP BY m.family) AS d
WHERE d.k = family_counts.family""",
    """UPDATE family_counts SET downloads = d.downloads,
    downloads_all_time = d.downloads_all_time
FROM (SELECT family, SUM(downloads) AS downloads,
             SUM(downloads_all_time) AS downloads_all_time
      FROM family_repos GROUP BY family) AS d
WHERE d.family = family_counts.family""",
)


def recount(conn: Connection) -> dict[str, int]:
    """Rebuild every counter from the occurrences; return the rows per table."""
    for table in COUNTER_TABLES:
        conn.execute(delete(table))
    for sql in RECOUNT_SQL:
        conn.execute(text(sql))
    return {
        t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
        for t in COUNTER_TABLES
    }


def snapshot(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
    """Return every counter row, per table (tests compare it with a recount)."""
    return {t.name: {tuple(r) for r in conn.execute(select(t))} for t in COUNTER_TABLES}


__all__ = [
    "COUNTER_TABLES",
    "RECOUNT_SQL",
    "count_accounts",
    "count_files",
    "ensure_blobs",
    "move_repo",
    "recount",
    "refamily",
    "snapshot",
]
