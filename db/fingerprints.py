"""Store what ``fingerprint --save`` computed: blob, tensors, claims, occurrence.

Everything for one file is written in one transaction, with upserts on natural
keys, so saving the same file again only refreshes ``last_seen``, two processes
saving at once queue on the database, and a process killed mid-way leaves either
the whole file or nothing.

A local file is an occurrence in a repo that is its directory (host "local",
``host_id`` the absolute directory, owner the machine's name); its path is the
absolute path.

Example:
    >>> file_id = save_fingerprint(conn, fp, location="/m/model.safetensors",
    ...                            host="local", seen_at=now())  # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from modelscan.db import counters, runs
from modelscan.db.portable import chunks, clean_text
from modelscan.db.tables import BLOBS, CLAIMS, EVENTS, FILES, REPOS, TENSORS
from modelscan.db.upsert import dialect_insert, upsert
from modelscan.records import Fingerprint
from modelscan.scanner.dtypes import dominant_dtype, dtype_elements

_COMPUTED = (
    "size",
    "format",
    "autov1",
    "autov2",
    "autov3",
    "blake3",
    "crc32",
    "content_id",
    "weights_id",
    "structure_id",
    "tensor_count",
    "parameter_count",
    "dtype",
    "dtype_summary",
    "metadata",
    "safety_verdict",
    "pickle_safety",
    "fingerprinted_at",
)


def blob_row(fp: Fingerprint, at: datetime) -> dict[str, Any]:
    """Return the ``blobs`` row of a fingerprint."""
    elements = dtype_elements((t.dtype, t.shape) for t in fp.tensors)
    safety = fp.pickle_safety
    return {
        "sha256": fp.sha256.lower(),
        "size": fp.size,
        "format": fp.format,
        "autov1": fp.autov1.lower(),
        "autov2": fp.autov2.lower(),
        "autov3": fp.autov3.lower() if fp.autov3 else None,
        "blake3": fp.blake3.lower() if fp.blake3 else None,
        "crc32": f"{fp.crc32:08x}" if fp.crc32 is not None else None,
        "content_id": fp.content_id,
        "weights_id": fp.weights_id,
        "structure_id": fp.structure_id,
        "tensor_count": len(fp.tensors),
        "parameter_count": fp.parameter_count,
        "dtype": dominant_dtype((t.dtype, t.shape) for t in fp.tensors),
        "dtype_summary": dict(elements) or None,
        "metadata": fp.metadata or None,
        "safety_verdict": safety.verdict if safety else None,
        "pickle_safety": safety.to_json() if safety else None,
        "first_seen": at,
        "fingerprinted_at": at,
    }


def _tensor_rows(blob_id: int, fp: Fingerprint) -> list[dict[str, Any]]:
    return [
        {
            "blob_id": blob_id,
            "position": i,
            "name": clean_text(t.name),
            "dtype": t.dtype,
            "shape": list(t.shape),
            "nbytes": t.nbytes,
            "digest": t.digest,
            "sketch": t.sketch,
        }
        for i, t in enumerate(fp.tensors)
    ]


def _local_repo(
    host: str, location: str, repo: str | None
) -> tuple[str, dict[str, Any]]:
    directory = repo if repo is not None else (os.path.dirname(location) or ".")
    local = host == "local"
    url = Path(directory).as_uri() if local and os.path.isabs(directory) else None
    return directory, {
        "name": os.path.basename(directory.rstrip("/")) or directory,
        "owner": socket.gethostname() if local else None,
        "url": url,
        "kind": "directory" if local else None,
    }


def _save_blob(
    conn: Connection, fp: Fingerprint, row: dict[str, Any]
) -> tuple[int, bool]:
    """Upsert the blob and its tensors; return its id and whether it was written.

    A remote fingerprint (read through HTTP Range: no tensor digests, some
    sketches) never overwrites a local one, and is marked in ``blobs.remote``;
    a local one, or a newer remote one, replaces a remote one's tensors.
    """
    prior = conn.execute(
        select(BLOBS.c.id, BLOBS.c.fingerprinted_at, BLOBS.c.remote).where(
            BLOBS.c.sha256 == row["sha256"]
        )
    ).first()
    local = prior is not None and prior.fingerprinted_at and prior.remote is None
    if prior is not None and fp.remote is not None and local:
        return int(prior.id), False  # the local fingerprint knows every byte
    upsert(conn, BLOBS, [row], key=["sha256"], prefer_new=_COMPUTED)
    blob_id = int(
        conn.execute(
            select(BLOBS.c.id).where(BLOBS.c.sha256 == row["sha256"])
        ).scalar_one()
    )
    remote = fp.remote.to_json() if fp.remote is not None else None
    conn.execute(update(BLOBS).where(BLOBS.c.id == blob_id).values(remote=remote))
    if prior is not None and prior.remote is not None:
        conn.execute(delete(TENSORS).where(TENSORS.c.blob_id == blob_id))
    has_tensors = conn.execute(
        select(TENSORS.c.position).where(TENSORS.c.blob_id == blob_id).limit(1)
    ).first()
    if fp.tensors and has_tensors is None:
        upsert(conn, TENSORS, _tensor_rows(blob_id, fp), key=["blob_id", "position"])
    return blob_id, True


def save_fingerprint(
    conn: Connection,
    fp: Fingerprint,
    *,
    location: str,
    host: str,
    seen_at: datetime,
    repo: str | None = None,
) -> int:
    """Save a fingerprint and its occurrence at ``location``; return the file id."""
    if host == "local":
        location = os.path.abspath(location)
    location = clean_text(location)
    runs.ensure_host(conn, host, seen_at)
    host_id, fields = _local_repo(host, location, repo)
    upsert(
        conn,
        REPOS,
        [
            {
                "host": host,
                "host_id": host_id,
                **fields,
                "status": "live",
                "first_seen": seen_at,
                "last_seen": seen_at,
                "gone_at": None,
            }
        ],
        key=["host", "host_id"],
        update=["last_seen", "status", "gone_at"],
    )
    rid = conn.execute(
        select(REPOS.c.id).where(REPOS.c.host == host, REPOS.c.host_id == host_id)
    ).scalar_one()
    save_blob_fingerprint(conn, fp, seen_at)
    return _save_occurrence(conn, host, rid, location, fp.sha256, fp.size, seen_at)


def save_blob_fingerprint(conn: Connection, fp: Fingerprint, seen_at: datetime) -> int:
    """Save what was computed of a blob (row, tensors, claims); return its id.

    No occurrence is written: a deep crawl fingerprints files it already holds.
    """
    row = blob_row(fp, seen_at)
    blob_id, written = _save_blob(conn, fp, row)
    counters.refamily(conn, [row["sha256"]])  # a weights_id joins a family
    claims = [
        {
            "blob_id": blob_id,
            "key": clean_text(c.key),
            "value": clean_text(c.value),
            "meaning": c.meaning,
            "verified": c.verified,
        }
        for c in (fp.claims if written else ())
    ]
    upsert(
        conn,
        CLAIMS,
        claims,
        key=["blob_id", "key", "value"],
        update=["meaning", "verified"],
    )
    return blob_id


def files_to_fingerprint(
    conn: Connection, host: str, host_ids: Sequence[str], suffixes: tuple[str, ...]
) -> list[tuple[str, str, int | None, str]]:
    """Live files of these repos whose sha256 has no fingerprint yet, one per blob.

    Returns:
        ``(sha256, url, size, path)`` for each, paths ending in one of
        ``suffixes`` (lower case), in repo order.
    """
    out: dict[str, tuple[str, str, int | None, str]] = {}
    for part in chunks(list(host_ids)):
        stmt = (
            select(FILES.c.sha256, FILES.c.url, FILES.c.size, FILES.c.path)
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .outerjoin(BLOBS, BLOBS.c.sha256 == FILES.c.sha256)
            .where(REPOS.c.host == host, REPOS.c.host_id.in_(part))
            .where(FILES.c.gone_at.is_(None), FILES.c.sha256.is_not(None))
            .where(FILES.c.url.is_not(None), BLOBS.c.fingerprinted_at.is_(None))
            .order_by(REPOS.c.id, FILES.c.path)
        )
        for sha, url, size, path in conn.execute(stmt):
            if path.lower().endswith(suffixes):
                out.setdefault(sha, (sha, url, size, path))
    return list(out.values())


def _save_occurrence(
    conn: Connection, host: str, rid: int, path: str, sha: str, size: int, at: datetime
) -> int:
    live = conn.execute(
        select(FILES.c.id, FILES.c.sha256).where(
            FILES.c.repo_id == rid, FILES.c.path == path, FILES.c.gone_at.is_(None)
        )
    ).first()
    if live is not None and live.sha256 == sha:
        conn.execute(
            update(FILES).where(FILES.c.id == live.id).values(last_seen=at, size=size)
        )
        counters.count_files(conn, [], files=[live.id])  # its last_seen
        return int(live.id)
    kind = "appeared"
    if live is not None:  # the file at this path was rewritten with other content
        conn.execute(
            update(FILES).where(FILES.c.id == live.id).values(gone_at=at, status="gone")
        )
        counters.count_files(conn, [(live.sha256, rid, -1, 0)])
        kind = "changed"
    row = {
        "repo_id": rid,
        "path": path,
        "size": size,
        "sha256": sha,
        "status": "live",
        "first_seen": at,
        "last_seen": at,
    }
    stmt = (
        dialect_insert(conn, FILES)
        .values(row)
        .returning(FILES.c.id)
        .on_conflict_do_nothing(
            index_elements=["repo_id", "path"], index_where=FILES.c.gone_at.is_(None)
        )
    )
    fid = conn.execute(stmt).scalar()
    if fid is None:  # another process saved the same path a moment ago
        return _save_occurrence(conn, host, rid, path, sha, size, at)
    counters.count_files(conn, [(sha, rid, 1, 1)], files=[fid])
    detail: dict[str, Any] = {"path": path}
    if live is not None:
        detail["old_sha256"] = live.sha256
    conn.execute(
        insert(EVENTS),
        {
            "at": at,
            "run_id": None,
            "host": host,
            "kind": kind,
            "repo_id": rid,
            "file_id": fid,
            "sha256": sha,
            "detail": detail,
        },
    )
    return int(fid)
