"""What the index hands a host that lists nothing itself: Ollama tags, sha256s to ask.

``crawl --host ollama`` reads the tags the index already knows (earlier Ollama
crawls, and ``ollama:`` parents any host declared) besides those it is given;
``crawl --host civitai --by-hash`` asks Civitai for the sha256s of live files
that Civitai does not hold in the index and that were not asked before
(``hash_lookups``, migration 0005). The crawl command gathers these here and
hands them to the host as plain options: ``registry/`` never reads the index.

Example:
    >>> with open_store() as store:  # doctest: +SKIP
    ...     hashes = hashes_to_ask(store, "civitai")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select

from modelscan.db.portable import chunks
from modelscan.db.store import Store
from modelscan.db.tables import FILES, HASH_LOOKUPS, LINEAGE, REPOS
from modelscan.db.upsert import upsert

OLLAMA = "ollama"
OLLAMA_PREFIX = "ollama:"


def known_ollama_tags(store: Store) -> list[str]:
    """Tags of live Ollama listings, and ``ollama:`` parents declared in the index."""

    def load(conn: Connection) -> list[str]:
        crawled = conn.execute(
            select(REPOS.c.host_id).where(
                REPOS.c.host == OLLAMA, REPOS.c.status == "live"
            )
        ).scalars()
        declared = conn.execute(
            select(LINEAGE.c.parent_ref)
            .where(LINEAGE.c.parent_ref.startswith(OLLAMA_PREFIX))
            .distinct()
        ).scalars()
        names = [*crawled, *(r.removeprefix(OLLAMA_PREFIX) for r in declared)]
        return sorted(set(names))

    return store.execute(load)


def hashes_to_ask(store: Store, host: str, *, full: bool = False) -> list[str]:
    """sha256s of live files elsewhere that ``host`` does not hold, not yet asked.

    Args:
        store: the index.
        host: the host asked ("civitai").
        full: also those asked before (``--full``).
    """

    def load(conn: Connection) -> list[str]:
        on_host = (
            select(FILES.c.sha256)
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .where(REPOS.c.host == host, FILES.c.sha256.is_not(None))
        )
        query = (
            select(FILES.c.sha256)
            .join(REPOS, REPOS.c.id == FILES.c.repo_id)
            .where(
                REPOS.c.host != host,
                FILES.c.sha256.is_not(None),
                FILES.c.gone_at.is_(None),
                FILES.c.sha256.not_in(on_host),
            )
            .distinct()
        )
        if not full:
            asked = select(HASH_LOOKUPS.c.sha256).where(HASH_LOOKUPS.c.host == host)
            query = query.where(FILES.c.sha256.not_in(asked))
        return sorted(s for s in conn.execute(query).scalars() if s)

    return store.execute(load)


def mark_asked(
    store: Store, host: str, hashes: Sequence[str], *, at: datetime
) -> None:
    """Remember that ``hashes`` were asked of ``host`` (again: the time moves)."""

    def save(conn: Connection) -> None:
        for part in chunks(list(dict.fromkeys(hashes))):
            rows = [{"host": host, "sha256": h, "asked_at": at} for h in part]
            upsert(conn, HASH_LOOKUPS, rows, key=["host", "sha256"],
                   update=["asked_at"])  # fmt: skip

    if hashes:
        store.execute(save, write=True)
