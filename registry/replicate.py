"""Replicate: public models, their versions, run counts and links to other hosts.

The HTTP API needs a token (``REPLICATE_API_TOKEN``); without one
:meth:`ReplicateHost.from_env` raises :class:`~modelscan.errors.AuthRequired` with a
message saying so, and ``crawl --host all`` goes on with the other hosts.

``/v1/models`` pages through ``next`` (an absolute URL): the saved cursor is its
path and query, re-based onto the configured base URL when fetched. Weights live
inside container images, so a listing carries version ids (``extra["versions"]``),
not file hashes; ``run_count`` is its reach (``downloads``). Links to Hugging Face
repos or Civitai models in the description, paper/license URLs or README are
kept as unresolved lineage references (source ``declared-description``).
Versions and README are fetched only for a new model or one whose latest version
changed.

Example:
    >>> host = ReplicateHost.from_env()  # doctest: +SKIP
    >>> page = host.fetch_page(None)  # doctest: +SKIP
    >>> [x.host_id for x in host.parse_page(page)][:2]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Unpack

from modelscan.errors import AuthRequired, UnexpectedResponse
from modelscan.records import LineageRef, Listing
from modelscan.refs import find_links  # the one reference parser (modelscan/refs.py)
from modelscan.registry.base import HostOptions, Page, host_client
from modelscan.registry.http import (
    HttpClient,
    join_url,
    relative_ref,
    strip_api_path,
)
from modelscan.registry.parsing import (
    ItemError,
    as_mapping,
    listed_items,
    parse_items,
    parse_time,
    replace,
)

DEFAULT_BASE_URL = "https://api.replicate.com"
BASE_URL_ENV = "MODELSCAN_REPLICATE_URL"
TOKEN_ENV = "REPLICATE_API_TOKEN"
MAX_VERSION_PAGES = 20  # a model with more versions keeps the newest 20 pages
LINK_FIELDS = ("description", "paper_url", "license_url", "github_url")
# Hosts whose links name a parent: a Replicate page links to itself (its API,
# its examples) and to other Cog packagings, which are no declared lineage.
LINK_HOSTS = ("huggingface", "civitai")


def base_url_from_env(endpoint: str | None = None) -> str:
    """Return ``--endpoint``, else ``MODELSCAN_REPLICATE_URL``, else Replicate's API."""
    given = endpoint or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return strip_api_path(given, "/v1")


# --- pure parsing ---------------------------------------------------------------------


def parse_lineage(
    item: Mapping[str, Any], readme: str | None = None
) -> tuple[LineageRef, ...]:
    """Unresolved parent references from a model's text fields and README."""
    texts = [str(item[k]) for k in LINK_FIELDS if isinstance(item.get(k), str)]
    if readme:
        texts.append(readme)
    parents = find_links("\n".join(texts), hosts=LINK_HOSTS)
    return tuple(LineageRef(p, "unknown", "declared-description") for p in parents)


def parse_model(
    item: Mapping[str, Any], *, base_url: str = DEFAULT_BASE_URL
) -> Listing:
    """Turn one ``/v1/models`` result into a Listing (revision: latest version id).

    Raises:
        UnexpectedResponse: ``owner`` or ``name`` is missing.
    """
    if not isinstance(item, Mapping) or not all(
        isinstance(item.get(k), str) for k in ("owner", "name")
    ):
        raise UnexpectedResponse(
            "replicate",
            join_url(base_url, "/v1/models"),
            None,
            f"model without owner/name: {str(item)[:80]}",
        )
    latest = as_mapping(item.get("latest_version"))
    host_id = f"{item['owner']}/{item['name']}"
    extra = {
        k: item[k]
        for k in (
            "visibility",
            "github_url",
            "paper_url",
            "license_url",
            "cover_image_url",
        )
        if item.get(k)
    }
    if latest.get("cog_version"):
        extra["cog_version"] = latest["cog_version"]
    return Listing(
        host="replicate",
        host_id=host_id,
        name=item["name"],
        owner=item["owner"],
        url=str(item.get("url") or f"https://replicate.com/{host_id}"),
        revision=latest.get("id"),
        updated_at=parse_time(latest.get("created_at")),
        status="private" if item.get("visibility") == "private" else "live",
        downloads=item.get("run_count"),
        lineage=parse_lineage(item),
        extra=extra,
        published_at=parse_time(latest.get("created_at")),  # until versions are read
    )


def parse_versions(payload: Any) -> list[dict[str, Any]]:
    """Version summaries (id, created_at, cog_version) of one versions page."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("results"), list):
        raise UnexpectedResponse(
            "replicate", "", None, f"expected {{'results': [...]}}: {str(payload)[:80]}"
        )
    return [
        {k: v[k] for k in ("id", "created_at", "cog_version") if k in v}
        for v in payload["results"]
        if isinstance(v, Mapping) and "id" in v
    ]


# --- the host -------------------------------------------------------------------------


class ReplicateHost:
    """Crawl Replicate's ``/v1/models`` (needs a token).

    Args:
        client: the shared HTTP client for this host, built with the token.
        base_url: the API's URL (``MODELSCAN_REPLICATE_URL``, ``--endpoint``).
    """

    name: ClassVar[str] = "replicate"

    def __init__(self, client: HttpClient, base_url: str = DEFAULT_BASE_URL) -> None:
        self.client = client
        self.base_url = strip_api_path(base_url, "/v1")
        self.cursor_key = "default"
        self.complete_listing = True

    @classmethod
    def from_env(cls, **options: Unpack[HostOptions]) -> ReplicateHost:
        """Build the host from ``REPLICATE_API_TOKEN`` and ``MODELSCAN_REPLICATE_URL``.

        Raises:
            ValueError: a filter is given (the API lists every model).
            AuthRequired: the token is not set.
        """
        if options.get("author") or options.get("search") or options.get("tag"):
            raise ValueError("Replicate's API has no --author, --search or --filter")
        base_url = base_url_from_env(options.get("endpoint"))
        token = options.get("token") or os.environ.get(TOKEN_ENV)
        if not token:
            raise AuthRequired(
                cls.name,
                base_url,
                f"Replicate's API needs a token: set {TOKEN_ENV} "
                "(https://replicate.com/account/api-tokens)",
            )
        return cls(
            host_client(cls.name, options, token=token, token_env=TOKEN_ENV), base_url
        )

    def fetch_page(self, cursor: str | None, *, limit: int | None = None) -> Page:
        """GET one page of public models (the API's page size is fixed)."""
        url = join_url(self.base_url, cursor or "/v1/models")
        answer = self.client.get_json(url)
        listed_items(self.name, answer, "results")
        data = answer.data
        nxt = data.get("next")
        next_cursor = (
            relative_ref(nxt, self.base_url) if isinstance(nxt, str) and nxt else None
        )
        return Page(data, next_cursor, cursor)

    def parse_page(self, page: Page) -> Iterator[Listing | ItemError]:
        """Listings of one page (pure); a malformed result becomes an ItemError."""
        return parse_items(
            page.payload["results"],
            lambda item: parse_model(item, base_url=self.base_url),
            f"page {page.cursor or '(first)'} result",
        )

    def needs_details(
        self, listing: Listing, known: bool, revision: str | None
    ) -> bool:
        """A new model, or one with a new latest version, needs versions and README."""
        return not known or revision != listing.revision

    def fetch_details(self, listing: Listing) -> Listing:
        """Add every version id and the README's links of a new or changed model."""
        try:
            versions = self._versions(listing.host_id)
        except UnexpectedResponse as exc:
            if exc.status in (404, 410):
                return replace(listing, status="gone")
            raise
        readme = self._readme(listing.host_id)
        lineage = listing.lineage
        if readme:
            lineage = (
                *lineage,
                *(ref for ref in parse_lineage({}, readme) if ref not in lineage),
            )
        dates = [parse_time(v.get("created_at")) for v in versions]
        first = min((d for d in dates if d is not None), default=listing.published_at)
        return replace(
            listing,
            lineage=lineage,
            extra={**listing.extra, "versions": versions},
            published_at=first,  # the model appeared with its first version
        )

    def check(self, host_id: str) -> str | None:
        """Status of a model the last full pass did not list: 404 means gone."""
        try:
            self.client.get_json(join_url(self.base_url, f"/v1/models/{host_id}"))
        except UnexpectedResponse as exc:
            if exc.status in (404, 410):
                return "gone"
            raise
        return "live"

    def _versions(self, host_id: str) -> list[dict[str, Any]]:
        url: str | None = join_url(self.base_url, f"/v1/models/{host_id}/versions")
        versions: list[dict[str, Any]] = []
        for _ in range(MAX_VERSION_PAGES):
            if url is None:
                break
            answer = self.client.get_json(url)
            try:
                versions.extend(parse_versions(answer.data))
            except UnexpectedResponse as exc:
                raise UnexpectedResponse(
                    self.name, answer.url, answer.status, exc.excerpt
                ) from None
            nxt = answer.data.get("next")
            url = (
                join_url(self.base_url, relative_ref(nxt, self.base_url))
                if nxt
                else None
            )
        return versions

    def _readme(self, host_id: str) -> str | None:
        """The model's README (``GET /v1/models/{owner}/{name}/readme``), if any."""
        try:
            return self.client.get_text(
                join_url(self.base_url, f"/v1/models/{host_id}/readme")
            )
        except (UnexpectedResponse, AuthRequired):  # none (404), old API, or refused
            return None
