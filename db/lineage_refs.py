"""Where files were first seen, and what a parent reference names.

Shared by ``link`` (db/lineage_infer.py), ``lineage`` and ``spread``: the hosted
occurrences of blobs (local files excluded: they are the user's own copies),
and the resolution of a reference text (``hf:org/name``, ``civitai:4384``, a
host URL, ``sha256:<hex>``, ``autov1:<hex>``) to a blob and a repo.

Example:
    >>> url_ref("https://huggingface.co/org/name/tree/main")
    'hf:org/name'
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, func, select

from modelscan.db.fileops import chunks
from modelscan.db.lineage import parse_ref, ref_for
from modelscan.db.tables import BLOBS, FILES, REPOS

LOCAL_HOST = "local"
URL_HOSTS = {
    "huggingface.co": "hf",
    "hf.co": "hf",
    "www.huggingface.co": "hf",
    "civitai.com": "civitai",
    "www.civitai.com": "civitai",
    "replicate.com": "replicate",
}
CASE_INSENSITIVE_HOSTS = ("huggingface",)  # the Hub resolves repo ids in any case


@dataclass(frozen=True, slots=True)
class Origin:
    """The first hosted occurrence of a blob."""

    repo_id: int
    first_seen: datetime
    file_id: int
    downloads: int = 0

    def key(self) -> tuple[datetime, int, int]:
        """Earlier first; within one crawl, the more downloaded upload first."""
        return (self.first_seen, -self.downloads, self.file_id)


@dataclass
class Holdings:
    """Hosted occurrences of some blobs: who holds each, and who held it first."""

    origin: dict[str, Origin] = field(default_factory=dict)
    repos: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def order(self, sha: str, blob_id: int) -> tuple[datetime, int, int, int]:
        """Sort key of blobs: the one first uploaded first (see :meth:`Origin.key`)."""
        return (*self.origin[sha].key(), blob_id)


def load_holdings(conn: Connection, shas: Iterable[str]) -> Holdings:
    """Return the hosted occurrences (live or gone) of the blobs ``shas``."""
    out = Holdings()
    for part in chunks(sorted(set(shas))):
        stmt = (
            select(
                FILES.c.sha256,
                FILES.c.repo_id,
                FILES.c.first_seen,
                FILES.c.id,
                REPOS.c.downloads,
            )
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .where(FILES.c.sha256.in_(part), REPOS.c.host != LOCAL_HOST)
        )
        for r in conn.execute(stmt):
            out.repos[r.sha256].add(r.repo_id)
            found = Origin(r.repo_id, r.first_seen, r.id, r.downloads or 0)
            seen = out.origin.get(r.sha256)
            if seen is None or found.key() < seen.key():
                out.origin[r.sha256] = found
    return out


def url_ref(text: str) -> str | None:
    """Turn a host URL naming a repo into a reference (``hf:org/name``), else None."""
    parts = urlsplit(text.strip())
    prefix = (
        URL_HOSTS.get(parts.netloc.lower())
        if parts.scheme in ("http", "https")
        else None
    )
    path = [p for p in parts.path.split("/") if p]
    if prefix is None or not path:
        return None
    if prefix == "civitai":
        return f"civitai:{path[1]}" if len(path) >= 2 and path[0] == "models" else None
    if prefix == "hf" and path[0] in ("models", "api") and len(path) >= 3:
        path = path[1:] if path[0] == "models" else path[2:]
    return f"{prefix}:{'/'.join(path[:2])}" if len(path) >= 2 else f"{prefix}:{path[0]}"


def repo_ref_forms(host: str, host_id: str, url: str | None) -> list[str]:
    """Every spelling of a reference to a repo that a host or file may use."""
    forms = [ref_for(host, host_id), f"{host}:{host_id}"]
    site = {
        "huggingface": "https://huggingface.co",
        "civitai": "https://civitai.com/models",
        "replicate": "https://replicate.com",
    }.get(host)
    if site:
        forms.append(f"{site}/{host_id}")
    if url:
        forms.append(url)
    return list(dict.fromkeys(forms))


def new_repo_refs(conn: Connection, since: datetime) -> list[str]:
    """Reference spellings of the repos first seen since ``since``."""
    stmt = select(REPOS.c.host, REPOS.c.host_id, REPOS.c.url).where(
        REPOS.c.first_seen >= since, REPOS.c.host != LOCAL_HOST
    )
    out: list[str] = []
    for r in conn.execute(stmt):
        out += repo_ref_forms(r.host, r.host_id, r.url)
    return out


def find_repo(conn: Connection, host: str, host_id: str) -> int | None:
    """Return the id of the repo ``(host, host_id)`` (any case on the Hub), or None."""
    stmt = select(REPOS.c.id).where(REPOS.c.host == host, REPOS.c.host_id == host_id)
    found = conn.execute(stmt).scalar()
    if found is None and host in CASE_INSENSITIVE_HOSTS:
        stmt = (
            select(REPOS.c.id)
            .where(REPOS.c.host == host, func.lower(REPOS.c.host_id) == host_id.lower())
            .order_by(REPOS.c.id)
        )
        found = conn.execute(stmt).scalar()
    return int(found) if found is not None else None


def parse_any_ref(ref: str) -> tuple[str, str] | None:
    """Return the (host, host_id) a reference or host URL names, else None."""
    text = ref.strip()
    if "://" in text:
        text = url_ref(text) or ""
    return parse_ref(text) if text else None


def resolve_ref(conn: Connection, ref: str) -> tuple[str | None, int | None]:
    """Return (parent blob sha256, parent repo id) that a reference names.

    ``sha256:<hex>`` and ``autov1:<hex>`` name a blob (its repo is where it was
    first seen); other references name a repo. Unknown parts are None.
    """
    kind, _, value = ref.partition(":")
    if kind in ("sha256", "autov1") and value:
        col = BLOBS.c.sha256 if kind == "sha256" else BLOBS.c.autov1
        stmt = select(BLOBS.c.sha256).where(col == value.lower()).order_by(BLOBS.c.id)
        sha = conn.execute(stmt).scalar()
        if sha is None:
            return None, None
        origin = load_holdings(conn, [sha]).origin.get(sha)
        return sha, origin.repo_id if origin else None
    parsed = parse_any_ref(ref)
    if parsed is None:
        return None, None
    return None, find_repo(conn, *parsed)


def repo_label(host: str, host_id: str) -> str:
    """The reference text a repo is shown as (``hf:org/name``, ``civitai:4384``)."""
    return ref_for(host, host_id)


def as_datetime(value: Any) -> datetime | None:
    """Read a timestamp from a view or an aggregate, which bypass the column type.

    SQLite hands back text without an offset (stored UTC); PostgreSQL an aware
    datetime.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)
