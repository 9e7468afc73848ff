"""File occurrences and published blobs: the diff a page or a save applies.

A :class:`Diff` collects what changes (rows to close, touch, insert, and the
events that say so) and :func:`write_diff` writes it with a few ``executemany``
statements, closing rows before inserting their successors so the partial
unique index on live ``(repo_id, path)`` always holds.

Example:
    >>> diff = Diff(host="civitai", run_id=1, at=now)  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from modelscan.db import counters
from modelscan.db.portable import chunks, clean_text
from modelscan.db.tables import BLOBS, EVENTS, FILES
from modelscan.db.upsert import upsert
from modelscan.records import RemoteFile

PUBLISHED_HASHES: dict[str, int | tuple[int, ...]] = {
    "autov1": 8,
    "autov3": (12, 64),
    "blake3": 64,
    "crc32": 8,
}
_HEX = re.compile(r"[0-9a-f]+")


def hex_or_none(value: object, lengths: int | tuple[int, ...]) -> str | None:
    """Return ``value`` as lower-case hex if it is hex of an allowed length."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    allowed = lengths if isinstance(lengths, tuple) else (lengths,)
    return text if len(text) in allowed and _HEX.fullmatch(text) else None


@dataclass(slots=True)
class Diff:
    """Pending changes to file occurrences, with their events."""

    host: str
    run_id: int | None
    at: datetime
    closes: list[dict[str, Any]] = field(default_factory=list)
    touches: list[dict[str, Any]] = field(default_factory=list)
    inserts: list[tuple[dict[str, Any], str | None, dict[str, Any]]] = field(
        default_factory=list
    )
    events: list[dict[str, Any]] = field(default_factory=list)
    changed_repos: set[int] = field(default_factory=set)
    counted: list[counters.FileDelta] = field(default_factory=list)  # rank counters
    # repos whose occurrences' dates and whose downloads the counters fold in
    folded: set[int] = field(default_factory=set)
    # blobs dated again in full: an occurrence now dated by itself, not its repo
    redate: set[str] = field(default_factory=set)

    def event(
        self,
        rid: int,
        kind: str,
        detail: dict[str, Any],
        *,
        file_id: int | None = None,
        sha256: str | None = None,
    ) -> None:
        """Queue one event row."""
        self.changed_repos.add(rid)
        self.events.append(
            {
                "at": self.at,
                "run_id": self.run_id,
                "host": self.host,
                "kind": kind,
                "repo_id": rid,
                "file_id": file_id,
                "sha256": sha256,
                "detail": detail,
            }
        )

    def repo_event(self, rid: int, kind: str, detail: dict[str, Any]) -> None:
        """Queue an event about a whole repo."""
        self.event(rid, kind, detail)

    def close(self, rid: int, row: Any, status: str, kind: str | None) -> None:
        """Close a live occurrence; ``kind`` names its event (None: no event)."""
        self.closes.append({"fid": row.id, "gone_at": self.at, "status": status})
        self.counted.append((row.sha256, rid, -1, 0))
        if kind:
            self.event(rid, kind, {"path": row.path}, file_id=row.id, sha256=row.sha256)

    def insert(
        self, row: dict[str, Any], kind: str | None, detail: dict[str, Any]
    ) -> None:
        """Queue a new occurrence; its event is written once its id is known."""
        self.inserts.append((row, kind, detail))
        live = int(row["gone_at"] is None)
        self.counted.append((row["sha256"], row["repo_id"], live, 1))
        if kind:
            self.changed_repos.add(row["repo_id"])


def load_live(conn: Connection, repo_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Return {repo_id: {path: row}} of the live occurrences of ``repo_ids``."""
    out: dict[int, dict[str, Any]] = {rid: {} for rid in repo_ids}
    for part in chunks(sorted(set(repo_ids))):
        stmt = select(
            FILES.c.id,
            FILES.c.repo_id,
            FILES.c.path,
            FILES.c.sha256,
            FILES.c.size,
            FILES.c.published_at,
        ).where(FILES.c.repo_id.in_(part), FILES.c.gone_at.is_(None))
        for row in conn.execute(stmt):
            out[row.repo_id][row.path] = row
    return out


def load_keys(
    conn: Connection, repo_ids: Sequence[int]
) -> dict[int, set[tuple[str, Any]]]:
    """Return {repo_id: {(path, sha256)}} over every occurrence, live or not."""
    out: dict[int, set[tuple[str, Any]]] = {rid: set() for rid in repo_ids}
    for part in chunks(sorted(set(repo_ids))):
        stmt = select(FILES.c.repo_id, FILES.c.path, FILES.c.sha256).where(
            FILES.c.repo_id.in_(part)
        )
        for row in conn.execute(stmt):
            out[row.repo_id].add((row.path, row.sha256))
    return out


def _file_row(
    rid: int, rf: RemoteFile, vid: int | None, at: datetime
) -> dict[str, Any]:
    sha = hex_or_none(rf.sha256, 64)
    extra = dict(rf.extra)
    if rf.hashes and sha is None:
        extra["hashes"] = dict(rf.hashes)  # no blob row to hold them
    return {
        "repo_id": rid,
        "version_id": vid,
        "path": clean_text(rf.path),
        "size": rf.size,
        "sha256": sha,
        "url": rf.url,
        "status": "live",
        "first_seen": at,
        "last_seen": at,
        "gone_at": None,
        "extra": extra or None,
        "published_at": rf.published_at,
    }


def _changed(old: Any, new: dict[str, Any]) -> bool:
    if old.sha256 and new["sha256"]:
        return bool(old.sha256 != new["sha256"])
    if old.sha256 is None and new["sha256"] is None:
        return (
            old.size is not None and new["size"] is not None and old.size != new["size"]
        )
    return False


def diff_files(
    diff: Diff,
    rid: int,
    files: Sequence[tuple[RemoteFile, str | None]],
    versions: dict[tuple[int, str], int],
    current: dict[str, Any],
) -> None:
    """Diff the listed files of a live repo against its live occurrences."""
    current = dict(current)
    for rf, rev in files:
        new = _file_row(rid, rf, versions.get((rid, rev)) if rev else None, diff.at)
        old = current.pop(new["path"], None)
        if old is None:
            diff.insert(new, "appeared", {"path": new["path"]})
        elif _changed(old, new):
            diff.close(rid, old, "gone", None)
            diff.insert(
                new,
                "changed",
                {"path": new["path"], "old_sha256": old.sha256, "old_size": old.size},
            )
        else:
            if old.sha256 is None:  # a recrawl gives the occurrence its sha256
                diff.counted.append((new["sha256"], rid, 1, 1))
            diff.touches.append(
                {
                    "fid": old.id,
                    "last_seen": diff.at,
                    "version_id": new["version_id"],
                    "size": new["size"],
                    "url": new["url"],
                    "sha256": new["sha256"] or old.sha256,
                    "extra": new["extra"],
                    # the first date a host gave stays; a recrawl fills in a NULL
                    "published_at": old.published_at or new["published_at"],
                }
            )
            if old.published_at is None and new["published_at"] is not None:
                diff.redate.add(new["sha256"] or old.sha256)
    for row in current.values():
        diff.close(rid, row, "gone", "gone")


def diff_closed_repo(
    diff: Diff,
    rid: int,
    files: Sequence[tuple[RemoteFile, str | None]],
    versions: dict[tuple[int, str], int],
    current: dict[str, Any],
    keys: set[tuple[str, Any]],
    status: str,
) -> None:
    """Record the files of a repo that is not live: closed, and never live twice."""
    for row in current.values():
        diff.close(rid, row, status, status)
    for rf, rev in files:
        new = _file_row(rid, rf, versions.get((rid, rev)) if rev else None, diff.at)
        if (new["path"], new["sha256"]) in keys:
            continue
        keys.add((new["path"], new["sha256"]))
        diff.insert({**new, "status": status, "gone_at": diff.at}, None, {})


def write_diff(conn: Connection, diff: Diff) -> None:
    """Write closes, touches, inserts, then the events (with the new file ids)."""
    if diff.closes:
        stmt = (
            update(FILES)
            .where(FILES.c.id == bindparam("fid"))
            .values(gone_at=bindparam("gone_at"), status=bindparam("status"))
        )
        conn.execute(stmt, diff.closes)
    if diff.touches:
        names = (
            "last_seen",
            "version_id",
            "size",
            "url",
            "sha256",
            "extra",
            "published_at",
        )
        stmt = (
            update(FILES)
            .where(FILES.c.id == bindparam("fid"))
            .values({n: bindparam(n) for n in names})
        )
        conn.execute(stmt, diff.touches)
    if diff.inserts:
        rows = [row for row, _, _ in diff.inserts]
        returning = insert(FILES).returning(FILES.c.id, sort_by_parameter_order=True)
        ids = [r.id for r in conn.execute(returning, rows)]
        for fid, (row, kind, detail) in zip(ids, diff.inserts, strict=True):
            if kind:
                diff.event(
                    row["repo_id"], kind, detail, file_id=fid, sha256=row["sha256"]
                )
    if diff.events:
        conn.execute(insert(EVENTS), diff.events)
    inserted = {row["repo_id"] for row, _, _ in diff.inserts}
    counters.count_files(conn, diff.counted, repos=diff.folded | inserted)
    counters.redate(conn, {sha for sha in diff.redate if sha})


def close_repo_files(conn: Connection, diff: Diff, rid: int, status: str) -> None:
    """Queue the closing of every live occurrence of one repo."""
    for row in load_live(conn, [rid])[rid].values():
        diff.close(rid, row, status, status)


def save_published_blobs(
    conn: Connection, files: Sequence[RemoteFile], at: datetime
) -> None:
    """Upsert a blob row per published sha256, filling only hashes still unknown."""
    rows = []
    for rf in files:
        sha = hex_or_none(rf.sha256, 64)
        if sha is None:
            continue
        row: dict[str, Any] = {
            "sha256": sha,
            "size": rf.size,
            "autov2": sha[:10],
            "first_seen": at,
        }
        for name, lengths in PUBLISHED_HASHES.items():
            row[name] = hex_or_none(rf.hashes.get(name), lengths)
        rows.append(row)
    upsert(
        conn,
        BLOBS,
        rows,
        key=["sha256"],
        prefer_old=["size", "autov2", *PUBLISHED_HASHES],
    )  # their counter rows: count_files, which folds every file of the page in
