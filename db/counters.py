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

The rows also keep dates and the families' downloads (``counted.py``): a
saved page passes its repos (``count_files(..., repos=)``) and they are written
in the same upsert as the counts.

Example:
    >>> count_files(conn, [("ab12...", repo_id, 1, 1)])  # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)

from modelscan.db import counted
from modelscan.db.counted import Dates, Deltas, Key
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

# (sha256, repo id, live copies added, copies added) for one occurrence
FileDelta = tuple[str | None, int, int, int]

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
    # only what moves: a recrawl that changes no count leaves the (indexed) count
    # columns out of the statement, and SQLite their index entries alone
    cols = sorted({c for d in deltas.values() for c, v in d.items() if v})
    rows = []
    for k in sorted(set(deltas) | set(dates)):
        row: dict[str, Any] = dict(zip(key, k, strict=True))
        row.update((insert_extra or {}).get(k, {}))
        row.update({c: deltas.get(k, {}).get(c, 0) for c in cols})
        if dates:
            row.update({c: dates.get(k, {}).get(c) for c in counted.DATES})
        rows.append(row)
    stmt = dialect_insert(conn, table)
    set_: dict[str, Any] = {c: table.c[c] + stmt.excluded[c] for c in cols}
    if dates:
        set_.update(
            {c: counted.fold(table.c[c], stmt.excluded[c], c) for c in counted.DATES}
        )
    if not set_:
        return {}  # nothing moves
    stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=set_).returning(
        *table.c
    )
    out = {}
    # one multi-row statement per batch (insertmanyvalues); rows come back in any
    # order, named by their key
    for r in conn.execute(stmt, rows):
        m = r._mapping
        k = tuple(m[c] for c in key)
        new = {
            c: m[c]
            for c in m
            if c not in key and c != "family" and c not in counted.DATES
        }
        out[k] = ({c: new[c] - deltas.get(k, {}).get(c, 0) for c in new}, new)
    if drop_empty:
        empty = [k for k, (_, new) in out.items() if new["copies"] <= 0]
        _delete(conn, table, empty)
    return out


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
    conn: Connection,
    changes: Iterable[FileDelta],
    *,
    repos: Iterable[int] = (),
    files: Iterable[int] = (),
) -> None:
    """Count occurrences added, closed or given a sha256 in this transaction.

    ``repos`` are repos whose occurrences or whose own dates and downloads were
    written in this transaction (a saved page's): their occurrences' dates and
    their downloads are folded into the blob and family rows as they are counted.
    ``files`` are single occurrences written apart from a page (a local file
    fingerprinted), whose dates alone are folded in, not their whole directory's.
    """
    changes = [c for c in changes if c[0] is not None and (c[2] or c[3])]
    repo_ids, file_ids = sorted(set(repos)), sorted(set(files))
    if not changes and not repo_ids and not file_ids:
        return
    accounts = _accounts(conn, {rid for _, rid, _, _ in changes})
    deltas: Deltas = defaultdict(lambda: {"live_copies": 0, "copies": 0})
    for sha, rid, live, copies in changes:
        d = deltas[(str(sha), *accounts[rid])]
        d["live_copies"] += live
        d["copies"] += copies
    count_accounts(conn, deltas, repos=repo_ids, files=file_ids)


def _accounts(conn: Connection, repo_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    owner = func.coalesce(REPOS.c.owner, REPOS.c.host_id)
    out = {}
    for part in chunks(sorted(repo_ids)):
        stmt = select(REPOS.c.id, REPOS.c.host, owner).where(REPOS.c.id.in_(part))
        out.update({rid: (host, own) for rid, host, own in conn.execute(stmt)})
    return out


def count_accounts(
    conn: Connection,
    deltas: Deltas,
    *,
    repos: Sequence[int] = (),
    files: Sequence[int] = (),
) -> None:
    """Add per-(sha256, host, owner) deltas to the blob and family counters.

    ``repos``, ``files``: what to fold dates (and downloads) of, as in
    :func:`count_files`.
    """
    deltas = {k: d for k, d in deltas.items() if any(d.values())}
    if not deltas and not repos and not files:
        return
    dates = counted.blob_dates(conn, repos=repos, files=files)
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
    families = counted.families(conn, [k[0] for k in blobs])
    hosted: Deltas = defaultdict(lambda: {"live_copies": 0, "copies": 0})
    for (sha, host, owner), d in deltas.items():
        if host != LOCAL_HOST:
            h = hosted[(families[sha], sha, host, owner)]
            h["live_copies"] += d["live_copies"]
            h["copies"] += d["copies"]
    _count_families(conn, hosted, repos=repos)


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
    dates, downloads = counted.family_rollup(conn, repos) if repos else ({}, {})
    for k, d in downloads.items():
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
    counted.redo_families(conn, sorted(moved))


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


redate = counted.redate


# The full recount: the same counts from the occurrences, table by table. The
# migrations, `modelscan db recount` and the tests run these statements.
_DATES_SQL = (
    "MIN(COALESCE(f.published_at, r.published_at)) AS first_published, "
    "MIN(f.first_seen) AS first_seen, MAX(f.last_seen) AS last_seen"
)
_SET_DATES = ", ".join(f"{n} = d.{n}" for n in counted.DATES)
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
    "redate",
    "refamily",
    "snapshot",
]
