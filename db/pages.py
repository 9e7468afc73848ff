"""Save one page of host listings: rows, events and the cursor in one transaction.

A :class:`~modelscan.records.Listing` is the complete current state of one repo
``(host, host_id)``: its files at ``revision``. Saving it diffs the files against
the repo's live occurrences: a new path appears, a path whose sha256 changed is
closed and reopened, a path no longer listed gets ``gone_at``. Nothing is
deleted. An event row records each change, so redoing a committed page writes
nothing new and redoing a rolled-back one writes exactly what it would have.

Two shortcuts keep recrawls cheap: a listing whose revision equals the stored
one and that carries no files (the crawler skipped the tree request) only
refreshes ``last_seen``; several listings of one ``host_id`` in a page (Civitai
versions) are merged into one repo, each file keeping its own version.

Example:
    >>> counts = save_page(conn, run_id, "civitai", listings, next_cursor="c2",
    ...                    cursor_key="default", seen_at=now())  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from modelscan.db import counters, runs
from modelscan.db.file_diff import (
    Diff,
    close_repo_files,
    diff_closed_repo,
    diff_files,
    load_keys,
    load_live,
    save_published_blobs,
    write_diff,
)
from modelscan.db.lineage import save_declared_lineage
from modelscan.db.portable import chunks
from modelscan.db.tables import FILES, REPOS, VERSIONS
from modelscan.db.upsert import upsert
from modelscan.errors import StoreError
from modelscan.records import Listing, RemoteFile

NOT_LIVE = frozenset(
    {"gone", "taken_down", "archived", "private", "disabled", "renamed"}
)
_REPO_FIELDS = (
    "name",
    "owner",
    "url",
    "kind",
    "license",
    "downloads",
    "likes",
    "revision",
    "updated_at",
    "status",
    "extra",
)


@dataclass(frozen=True, slots=True)
class PageCounts:
    """What a saved page did to the index."""

    new: int
    changed: int
    unchanged: int
    files: int


@dataclass(slots=True)
class _Repo:
    """The listings of one host_id in a page, merged."""

    listing: Listing
    files: list[tuple[RemoteFile, str | None]] = field(default_factory=list)
    revisions: list[str] = field(default_factory=list)


def file_status(repo_status: str) -> str:
    """Return the status given to the files of a repo that is not live."""
    return "taken_down" if repo_status == "taken_down" else "gone"


def _merge(listings: Sequence[Listing]) -> list[_Repo]:
    merged: dict[str, _Repo] = {}
    for listing in listings:
        repo = merged.setdefault(listing.host_id, _Repo(listing))
        paths = {f.path for f, _ in repo.files}
        repo.files.extend(
            (f, listing.revision) for f in listing.files if f.path not in paths
        )
        if listing.revision and listing.revision not in repo.revisions:
            repo.revisions.append(listing.revision)
    return list(merged.values())


def save_page(
    conn: Connection,
    run_id: int,
    host: str,
    listings: Sequence[Listing],
    *,
    next_cursor: str | None,
    cursor_key: str | None,
    seen_at: datetime,
) -> PageCounts:
    """Upsert a page of listings with their events, then save the cursor.

    ``cursor_key=None`` leaves the cursor as it is (listings completed apart from
    their page).
    """
    runs.heartbeat(conn, run_id, host)
    runs.ensure_host(conn, host, seen_at)
    strays = sorted({x.host for x in listings} - {host})
    if strays:
        raise StoreError(f"a page of {host} holds listings of {', '.join(strays)}")
    repos = _merge(listings)
    before = _load_repos(conn, host, [r.listing.host_id for r in repos])
    ids = _upsert_repos(conn, host, repos, before, seen_at)
    _move_owners(conn, host, repos, before, ids)
    versions = _upsert_versions(conn, repos, ids, seen_at)
    save_published_blobs(conn, [f for r in repos for f, _ in r.files], seen_at)
    diff = Diff(host=host, run_id=run_id, at=seen_at)
    touched_only, to_diff = [], []
    for repo in repos:
        rid, old = ids[repo.listing.host_id], before.get(repo.listing.host_id)
        _repo_events(diff, repo.listing, rid, old)
        unchanged_head = old and repo.listing.revision == old["revision"]
        if unchanged_head and not repo.files and repo.listing.status not in NOT_LIVE:
            touched_only.append(rid)
        else:
            to_diff.append((rid, repo))
    live = load_live(conn, [rid for rid, _ in to_diff])
    closed = [rid for rid, r in to_diff if r.listing.status in NOT_LIVE]
    keys = load_keys(conn, closed) if closed else {}
    for rid, repo in to_diff:
        if repo.listing.status in NOT_LIVE:
            status = file_status(repo.listing.status)
            diff_closed_repo(
                diff, rid, repo.files, versions, live[rid], keys[rid], status
            )
        else:
            diff_files(diff, rid, repo.files, versions, live[rid])
    _touch_live_files(conn, touched_only, seen_at)
    diff.folded.update(ids.values())  # dates and downloads, for the counters
    write_diff(conn, diff)
    new_ids = [ids[r.listing.host_id] for r in repos if r.listing.host_id not in before]
    save_declared_lineage(
        conn,
        host,
        [(ids[r.listing.host_id], r.listing) for r in repos],
        seen_at,
        new_repo_ids=new_ids,
    )
    if cursor_key is not None:
        runs.save_cursor(conn, host, cursor_key, next_cursor, run_id)
    changed_ids = diff.changed_repos
    new = sum(1 for r in repos if r.listing.host_id not in before)
    changed = sum(
        1
        for r in repos
        if r.listing.host_id in before and ids[r.listing.host_id] in changed_ids
    )
    return PageCounts(
        new=new,
        changed=changed,
        unchanged=len(repos) - new - changed,
        files=sum(len(x.files) for x in listings),
    )


def _load_repos(
    conn: Connection, host: str, host_ids: list[str]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for part in chunks(host_ids):
        stmt = select(
            REPOS.c.host_id,
            REPOS.c.id,
            REPOS.c.revision,
            REPOS.c.status,
            REPOS.c.gone_at,
            REPOS.c.published_at,
            REPOS.c.owner,
        ).where(REPOS.c.host == host, REPOS.c.host_id.in_(part))
        out.update({r.host_id: r._asdict() for r in conn.execute(stmt)})
    return out


def _upsert_repos(
    conn: Connection,
    host: str,
    repos: list[_Repo],
    before: dict[str, dict[str, Any]],
    seen_at: datetime,
) -> dict[str, int]:
    rows = []
    for repo in repos:
        listing, old = repo.listing, before.get(repo.listing.host_id)
        gone_at = None
        if listing.status in NOT_LIVE:
            gone_at = (old or {}).get("gone_at") or seen_at
        row = {f: getattr(listing, f) for f in _REPO_FIELDS}
        row.update(
            host=host,
            host_id=listing.host_id,
            extra=listing.extra or None,
            first_seen=seen_at,
            last_seen=seen_at,
            gone_at=gone_at,
        )
        if listing.revision is None and old is not None:
            row["revision"] = old["revision"]
        row["published_at"] = listing.published_at
        row["downloads_all_time"] = listing.downloads_all_time
        rows.append(row)
    upsert(
        conn,
        REPOS,
        rows,
        key=["host", "host_id"],
        update=[*_REPO_FIELDS, "last_seen", "gone_at"],
        prefer_new=["downloads_all_time"],
        prefer_old=["published_at"],  # the first date a host gave stays
    )
    ids = {k: v["id"] for k, v in before.items()}
    missing = [r.listing.host_id for r in repos if r.listing.host_id not in ids]
    ids.update({k: v["id"] for k, v in _load_repos(conn, host, missing).items()})
    return ids


def _move_owners(
    conn: Connection,
    host: str,
    repos: list[_Repo],
    before: dict[str, dict[str, Any]],
    ids: dict[str, int],
) -> None:
    """Move the rank counters of repos whose owner changed (before the diff)."""
    for repo in repos:
        hid, old = repo.listing.host_id, before.get(repo.listing.host_id)
        if old is not None and (old["owner"] or hid) != (repo.listing.owner or hid):
            counters.move_repo(conn, ids[hid], (host, old["owner"] or hid))


def _upsert_versions(
    conn: Connection, repos: list[_Repo], ids: dict[str, int], seen_at: datetime
) -> dict[tuple[int, str], int]:
    rows: list[dict[str, Any]] = []
    for repo in repos:
        rid = ids[repo.listing.host_id]
        rows += [
            {
                "repo_id": rid,
                "revision": rev,
                "updated_at": repo.listing.updated_at,
                "first_seen": seen_at,
                "last_seen": seen_at,
            }
            for rev in repo.revisions
        ]
    upsert(
        conn,
        VERSIONS,
        rows,
        key=["repo_id", "revision"],
        update=["last_seen"],
        prefer_new=["updated_at"],
    )
    out: dict[tuple[int, str], int] = {}
    for part in chunks(sorted({r["repo_id"] for r in rows})):
        stmt = select(VERSIONS.c.repo_id, VERSIONS.c.revision, VERSIONS.c.id).where(
            VERSIONS.c.repo_id.in_(part)
        )
        out.update({(r.repo_id, r.revision): r.id for r in conn.execute(stmt)})
    return out


def _repo_events(
    diff: Diff, listing: Listing, rid: int, old: dict[str, Any] | None
) -> None:
    if old is None:
        diff.repo_event(
            rid, "appeared", {"revision": listing.revision, "status": listing.status}
        )
        return
    was_live, is_live = old["status"] not in NOT_LIVE, listing.status not in NOT_LIVE
    if was_live and not is_live:
        diff.repo_event(rid, file_status(listing.status), {"status": listing.status})
    elif is_live and not was_live:
        diff.repo_event(rid, "appeared", {"status": listing.status, "reappeared": True})
    elif old["status"] != listing.status:
        diff.repo_event(rid, "changed", {"status": [old["status"], listing.status]})
    if listing.revision is not None and listing.revision != old["revision"]:
        diff.repo_event(
            rid, "changed", {"revision": [old["revision"], listing.revision]}
        )


def _touch_live_files(conn: Connection, repo_ids: list[int], seen_at: datetime) -> None:
    if not repo_ids:
        return
    stmt = (
        update(FILES)
        .where(FILES.c.repo_id == bindparam("rid"), FILES.c.gone_at.is_(None))
        .values(last_seen=seen_at)
    )
    conn.execute(stmt, [{"rid": rid} for rid in repo_ids])


def known_revisions(
    conn: Connection, host: str, host_ids: Sequence[str]
) -> dict[str, str | None]:
    """Return {host_id: stored revision} of the repos of ``host_ids`` held as live.

    A repo the index holds as gone (or taken down, private, ...) is left out, as if
    unknown: the crawler fetches its details again, so a repo that comes back
    with the same revision gets its files listed, and reopened, again.
    """
    return {
        k: v["revision"]
        for k, v in _load_repos(conn, host, list(host_ids)).items()
        if v["status"] not in NOT_LIVE
    }


def undated(conn: Connection, host: str, host_ids: Sequence[str]) -> set[str]:
    """Return the host ids of ``host_ids`` held without the host's date.

    Repos crawled before migration 0004 have no ``published_at``; the crawl
    fetches their details once more when the host now gives a date.
    """
    return {
        k
        for k, v in _load_repos(conn, host, list(host_ids)).items()
        if v["published_at"] is None
    }


def unseen_since(conn: Connection, host: str, since: datetime) -> list[str]:
    """Return host ids of live repos of ``host`` not seen since ``since``."""
    stmt = (
        select(REPOS.c.host_id)
        .where(REPOS.c.host == host, REPOS.c.last_seen < since)
        .where(REPOS.c.gone_at.is_(None), REPOS.c.status.not_in(sorted(NOT_LIVE)))
        .order_by(REPOS.c.host_id)
    )
    return list(conn.execute(stmt).scalars())


def mark_gone(
    conn: Connection,
    host: str,
    host_id: str,
    *,
    at: datetime,
    status: str,
    run_id: int | None,
) -> bool:
    """Mark a repo and its live files gone (or taken down); return False if unknown.

    ``status="gated"`` only changes the repo's status: its files stay downloadable.
    """
    repo = _load_repos(conn, host, [host_id]).get(host_id)
    if repo is None or repo["status"] == status:
        return repo is not None
    diff = Diff(host=host, run_id=run_id, at=at)
    values: dict[str, Any] = {"status": status}
    if status in NOT_LIVE:
        values["gone_at"] = repo["gone_at"] or at
        diff.repo_event(repo["id"], file_status(status), {"status": status})
        close_repo_files(conn, diff, repo["id"], file_status(status))
    else:
        diff.repo_event(repo["id"], "changed", {"status": [repo["status"], status]})
    conn.execute(update(REPOS).where(REPOS.c.id == repo["id"]).values(**values))
    write_diff(conn, diff)
    return True
