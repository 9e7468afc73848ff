"""Hugging Face: list models by last modification, file trees of new or changed repos.

Pagination: the list endpoint ``/api/models`` is driven page by page through the
shared :class:`~modelscan.registry.http.HttpClient`, not through
``HfApi.list_models``. huggingface_hub follows the ``Link: <...>; rel="next"``
header itself and never hands the next URL out, so a crawl built on it could not
save where it stopped; here the next URL, re-based onto the configured endpoint
(path and query only), is the saved cursor, committed with its page. The calls
that need no resuming go through huggingface_hub as usual: ``list_repo_tree``
(recursive, ``expand=True`` for LFS sha256, size and ``securityFileStatus``) for a
repo whose commit ``sha`` differs from the index, and ``model_info`` to tell a
vanished repo's fate (404 gone, 307 renamed, disabled).

Declared lineage comes from the card's ``base_model`` (string or list) and
``base_model_relation``, from the ``base_model:<relation>:<id>`` tags, and from
``adapter_config.json`` (fetched only when the tree has it).

Example:
    >>> host = HuggingFaceHost.from_env(author="openai")  # doctest: +SKIP
    >>> page = host.fetch_page(None, limit=5)  # doctest: +SKIP
    >>> [listing.host_id for listing in host.parse_page(page)]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Unpack
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx2
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder

from modelscan.errors import (
    AuthRequired,
    HostError,
    HostUnavailable,
    RateLimited,
    UnexpectedResponse,
)
from modelscan.records import LineageRef, Listing, RemoteFile
from modelscan.refs import hf_ref  # the one reference parser (modelscan/refs.py)
from modelscan.registry.base import HostOptions, Page, host_client
from modelscan.registry.http import (
    USER_AGENT,
    HttpClient,
    join_url,
    relative_ref,
    wait_hint,
)
from modelscan.registry.hub_transport import bound
from modelscan.registry.parsing import (
    ItemError,
    filter_key,
    parse_items,
    parse_time,
    replace,
)

# What a huggingface_hub call raises when the Hub answers badly (mapped to HostError;
# OSError covers its OfflineModeIsEnabled and other connection errors of its own).
_HUB_FAILURES = (
    HfHubHTTPError,
    httpx2.HTTPError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
)
DEFAULT_BASE_URL = "https://huggingface.co"
TOKEN_ENV = "HF_TOKEN"
PAGE_SIZE = 1000  # the Hub's maximum for /api/models
ADAPTER_CONFIG = "adapter_config.json"
# Properties asked of the list endpoint: everything parse_model reads, nothing heavy.
LIST_EXPAND = (
    "author",
    "cardData",
    "createdAt",
    "disabled",
    "downloads",
    "downloadsAllTime",
    "gated",
    "lastModified",
    "library_name",
    "likes",
    "pipeline_tag",
    "private",
    "sha",
    "tags",
)
RELATIONS = frozenset({"adapter", "merge", "quantized", "finetune"})  # HF's own words


def base_url_from_env(endpoint: str | None = None) -> str:
    """Return ``--endpoint``, else ``HF_ENDPOINT``, else huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_BASE_URL).rstrip("/")


# --- pure parsing ---------------------------------------------------------------------


def parse_lineage(
    card: Mapping[str, Any] | None, tags: Sequence[str]
) -> tuple[LineageRef, ...]:
    """Return the parents a card and its ``base_model`` tags declare, one ref each.

    A parent named by the card keeps source ``declared-card``; its relation is the
    card's ``base_model_relation``, else the one its tag states. Parents only in
    tags get ``declared-tag``.
    """
    card = card or {}
    named = card.get("base_model")
    from_card = (
        [named]
        if isinstance(named, str)
        else [v for v in named if isinstance(v, str)]
        if isinstance(named, list)
        else []
    )
    card_relation = card.get("base_model_relation")
    if card_relation not in RELATIONS:
        card_relation = None
    tagged: dict[str, str | None] = {}
    for tag in tags:
        if not isinstance(tag, str) or not tag.startswith("base_model:"):
            continue
        rest = tag[len("base_model:") :]
        word, _, parent = rest.partition(":")
        if parent and word in RELATIONS:
            tagged[parent] = word
        elif rest and ":" not in rest:
            tagged.setdefault(rest, None)
    refs: dict[str, LineageRef] = {}
    for parent in from_card:
        stated = card_relation or tagged.get(parent) or "unknown"
        refs[parent] = LineageRef(hf_ref(parent), stated, "declared-card")
    for parent, relation in tagged.items():
        if parent not in refs:
            refs[parent] = LineageRef(
                hf_ref(parent), relation or "unknown", "declared-tag"
            )
    return tuple(refs.values())


def parse_status(item: Mapping[str, Any]) -> str:
    """Availability of a repo as the Hub reports it."""
    if item.get("disabled"):
        return "taken_down"  # disabled by the Hub (DMCA, policy)
    if item.get("private"):
        return "private"
    if item.get("gated"):
        return "gated"  # "auto" or "manual": listed, files behind a form
    return "live"


def parse_license(card: Mapping[str, Any] | None, tags: Sequence[str]) -> str | None:
    """The card's license, else the ``license:`` tag."""
    value = (card or {}).get("license")
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if isinstance(value, str) and value:
        return value
    for tag in tags:
        if isinstance(tag, str) and tag.startswith("license:"):
            return tag[len("license:") :]
    return None


def parse_model(
    item: Mapping[str, Any], *, base_url: str = DEFAULT_BASE_URL
) -> Listing:
    """Turn one ``/api/models`` entry (or a ``model_info`` record) into a Listing.

    Raises:
        UnexpectedResponse: the entry is not an object or has no ``id``.
    """
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
        raise UnexpectedResponse(
            "huggingface",
            join_url(base_url, "/api/models"),
            None,
            f"model entry without 'id': {str(item)[:80]}",
        )
    repo_id: str = item["id"]
    tags = [t for t in item.get("tags") or [] if isinstance(t, str)]
    card = item.get("cardData") if isinstance(item.get("cardData"), Mapping) else None
    extra = {k: item[k] for k in ("library_name", "createdAt", "gated") if item.get(k)}
    extra["tags"] = tags
    return Listing(
        host="huggingface",
        host_id=repo_id,
        name=repo_id.rsplit("/", 1)[-1],
        owner=item.get("author") or (repo_id.split("/")[0] if "/" in repo_id else None),
        url=f"{base_url}/{repo_id}",
        revision=item.get("sha"),
        updated_at=parse_time(item.get("lastModified")),
        status=parse_status(item),
        kind=item.get("pipeline_tag"),
        license=parse_license(card, tags),
        downloads=item.get("downloads"),
        likes=item.get("likes"),
        lineage=parse_lineage(card, tags),
        extra=extra,
        published_at=parse_time(item.get("createdAt")),
        downloads_all_time=_count(item.get("downloadsAllTime")),
    )


def _count(value: object) -> int | None:
    """A count the Hub states, or None for anything but a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def parse_tree(
    entries: Iterable[RepoFile | RepoFolder],
    *,
    base_url: str,
    repo_id: str,
    revision: str,
) -> tuple[RemoteFile, ...]:
    """Turn ``list_repo_tree(recursive=True, expand=True)`` entries into RemoteFiles.

    LFS files carry the Hub's sha256 (the LFS oid, equal to the file's sha256);
    other files keep only their git blob id in ``extra``. ``published_at`` is the
    date of the file's ``lastCommit``: the commit that put this content at this
    path (None when the tree has no commit info).
    """
    files = []
    for entry in entries:
        if not isinstance(entry, RepoFile):
            continue
        extra: dict[str, Any] = {"git_oid": entry.blob_id}
        if entry.xet_hash:
            extra["xet_hash"] = entry.xet_hash
        if entry.security is not None:
            extra["security"] = {
                "status": entry.security.status,
                "av_scan": entry.security.av_scan,
                "pickle_import_scan": entry.security.pickle_import_scan,
            }
        lfs = entry.lfs
        files.append(
            RemoteFile(
                path=entry.path,
                size=lfs.size if lfs is not None else entry.size,
                sha256=lfs.sha256.lower() if lfs is not None else None,
                url=f"{base_url}/{repo_id}/resolve/{revision}/{quote(entry.path)}",
                extra=extra,
                published_at=entry.last_commit.date if entry.last_commit else None,
            )
        )
    return tuple(sorted(files, key=lambda f: f.path))


def _dated(rf: RemoteFile, default: datetime) -> RemoteFile:
    """The file with ``default`` as its date when the tree gave none."""
    if rf.published_at is not None:
        return rf
    return dataclasses.replace(rf, published_at=default)


def parse_adapter_config(data: Any) -> LineageRef | None:
    """The base model a PEFT ``adapter_config.json`` names, if any."""
    if not isinstance(data, Mapping):
        return None
    base = data.get("base_model_name_or_path")
    if not isinstance(base, str) or not base.strip():
        return None
    return LineageRef(hf_ref(base), "adapter", "declared-file")


def _with_limit(ref: str, limit: int) -> str:
    """Set the ``limit`` query parameter of a saved next-page reference."""
    parts = urlsplit(ref)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k != "limit"
    ]
    query.append(("limit", str(limit)))
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


# --- the host -------------------------------------------------------------------------


class HuggingFaceHost:
    """Crawl the Hugging Face Hub (or a mirror) through one HttpClient and HfApi.

    Args:
        client: the shared HTTP client for this host.
        base_url: the Hub's URL (``HF_ENDPOINT``, ``--endpoint``).
        author: only this user's or organisation's repos.
        search: only repos whose id contains this text.
        tag: only repos with this tag (``--filter``).
        token: Hub token (default: huggingface_hub's, e.g. ``HF_TOKEN``).
    """

    name: ClassVar[str] = "huggingface"

    def __init__(
        self,
        client: HttpClient,
        base_url: str = DEFAULT_BASE_URL,
        *,
        author: str | None = None,
        search: str | None = None,
        tag: str | None = None,
        token: str | None = None,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.filters = {
            k: v
            for k, v in (("author", author), ("search", search), ("filter", tag))
            if v
        }
        self.cursor_key = filter_key(self.filters)
        self.complete_listing = not self.filters
        self.api = HfApi(
            endpoint=self.base_url,
            token=token or False,
            headers={"user-agent": USER_AGENT},
        )

    @classmethod
    def from_env(cls, **options: Unpack[HostOptions]) -> HuggingFaceHost:
        """Build the host from the environment (``HF_ENDPOINT``, the Hub token)."""
        token = options.get("token") or get_token()
        return cls(
            host_client(cls.name, options, token=token, token_env=TOKEN_ENV),
            base_url_from_env(options.get("endpoint")),
            author=options.get("author"),
            search=options.get("search"),
            tag=options.get("tag"),
            token=token,
        )

    def fetch_page(self, cursor: str | None, *, limit: int | None = None) -> Page:
        """GET one page of ``/api/models`` sorted by last modification, newest first."""
        size = min(limit, PAGE_SIZE) if limit else PAGE_SIZE
        if cursor is None:
            url = join_url(self.base_url, "/api/models")
            params: list[tuple[str, str]] | None = [
                *self.filters.items(),
                ("sort", "lastModified"),
                ("limit", str(size)),
                *(("expand", prop) for prop in LIST_EXPAND),
            ]
        else:
            url, params = join_url(self.base_url, _with_limit(cursor, size)), None
        answer = self.client.get_json(url, params=params)  # type: ignore[arg-type]
        if not isinstance(answer.data, list):
            raise UnexpectedResponse(
                self.name,
                answer.url,
                answer.status,
                f"expected a JSON list of models: {str(answer.data)[:80]}",
            )
        next_cursor = (
            relative_ref(answer.next_link, self.base_url) if answer.next_link else None
        )
        return Page(answer.data, next_cursor, cursor)

    def parse_page(self, page: Page) -> Iterator[Listing | ItemError]:
        """Listings of one page (pure); a malformed entry becomes an ItemError."""
        return parse_items(
            page.payload,
            lambda item: parse_model(item, base_url=self.base_url),
            f"page {page.cursor or '(first)'} entry",
        )

    def needs_details(
        self, listing: Listing, known: bool, revision: str | None
    ) -> bool:
        """A new repo, or one whose commit sha moved, needs its tree."""
        if listing.status in ("private", "taken_down") or listing.revision is None:
            return False
        return not known or revision != listing.revision

    def fetch_details(self, listing: Listing) -> Listing:
        """Add the file tree (and adapter_config.json lineage) of a new/changed repo.

        A gated repo keeps its tree (the Hub lists it to anyone) and gets status
        ``gated`` when its adapter_config.json is refused (401 anonymous, 403 not
        granted); the lineage source it would have given is recorded as unread in
        ``extra["unread"]`` instead of failing the repo or the run.
        """
        repo_id, sha = listing.host_id, listing.revision or "main"
        url = join_url(self.base_url, f"/api/models/{repo_id}/tree/{sha}")
        try:
            with bound(self.client, self.base_url):
                entries = list(
                    self.api.list_repo_tree(
                        repo_id, revision=sha, recursive=True, expand=True
                    )
                )
        except GatedRepoError:
            return listing  # listed, but its tree is behind the gate: keep what we know
        except DisabledRepoError:
            return replace(listing, status="taken_down")
        except RevisionNotFoundError as exc:
            raise UnexpectedResponse(
                self.name, url, 404, f"commit {sha} moved on; retried next pass"
            ) from exc
        except RepositoryNotFoundError:
            return replace(listing, status="gone")
        except _HUB_FAILURES as exc:
            raise self._error(url, exc) from exc
        files = parse_tree(
            entries, base_url=self.base_url, repo_id=repo_id, revision=sha
        )
        created = listing.published_at  # the repo's createdAt stands in
        if created is not None:
            files = tuple(_dated(f, created) for f in files)
        listing = replace(listing, files=files)
        if any(f.path == ADAPTER_CONFIG for f in files):
            listing = self._with_adapter_parent(listing, sha)
        return listing

    def check(self, host_id: str) -> str | None:
        """Status of a repo the last full pass did not list: gone, renamed, or live."""
        url = join_url(self.base_url, f"/api/models/{host_id}")
        try:
            with bound(self.client, self.base_url):
                info = self.api.model_info(host_id)
        except DisabledRepoError:
            return "taken_down"
        except GatedRepoError:
            return "live"
        except RepositoryNotFoundError:
            return "gone"
        except _HUB_FAILURES as exc:
            raise self._error(url, exc) from exc
        if info.id != host_id:  # the Hub answered 307 to the new name
            return "renamed"
        return "taken_down" if info.disabled else "live"

    def _with_adapter_parent(self, listing: Listing, sha: str) -> Listing:
        """Add the parent adapter_config.json names, or record why it is unread."""
        repo_id = listing.host_id
        url = join_url(self.base_url, f"/{repo_id}/resolve/{sha}/{ADAPTER_CONFIG}")
        try:
            data = self.client.get_json(url, redirects=3).data
        except AuthRequired as exc:  # gated (or refused): this repo only, not the run
            unread = {**listing.extra.get("unread", {}), ADAPTER_CONFIG: str(exc)}
            status = "gated" if exc.gated else listing.status
            return replace(
                listing, status=status, extra={**listing.extra, "unread": unread}
            )
        except UnexpectedResponse:  # missing (404), moved, or never valid JSON
            return listing
        ref = parse_adapter_config(data)
        if ref is None or ref in listing.lineage:
            return listing
        return replace(listing, lineage=(*listing.lineage, ref))

    def _error(self, url: str, exc: Exception) -> HostError:
        """Map an exception from huggingface_hub to this project's errors."""
        url = self.client.redact(url)
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
            if status == 429:
                return RateLimited(self.name, url, wait_hint(exc.response.headers))
            if status >= 500:
                return HostUnavailable(self.name, url, f"HTTP {status} after retries")
            return UnexpectedResponse(
                self.name, url, status, self.client.redact(str(exc).splitlines()[0])
            )
        if isinstance(exc, httpx2.TransportError):
            return HostUnavailable(self.name, url, f"unreachable: {type(exc).__name__}")
        return UnexpectedResponse(
            self.name, url, None, self.client.redact(f"{type(exc).__name__}: {exc}")
        )
