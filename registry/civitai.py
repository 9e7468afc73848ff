"""Civitai: every model with all its versions and files from the REST v1 API.

``/api/v1/models`` pages with ``cursor`` (``metadata.nextCursor``): the page
number form stops at page*limit = 1000, so cursors are the only way through the
whole catalogue. The saved cursor is the ``nextCursor`` value itself; the request
is rebuilt under the configured base URL, so ``metadata.nextPage`` (an absolute
URL) is never followed.

One :class:`~modelscan.records.Listing` per *model version*, all with the model's
id as ``host_id`` and the version's id as ``revision``, newest version first: the
index merges them into one repo (the unit Civitai takes down or archives with
``mode``, and counts downloads for) whose versions each keep their own files.
File paths are ``<version id>/<file id>/<file name>``: one version may publish
two files of the same name (a full and a pruned ``model.safetensors``). A new
version changes the repo's revision: a changed listing. ``--limit`` counts
models, never splitting one model's versions.

Hashes are stored under our names: ``SHA256`` lower-cased is ``sha256``; AutoV1,
AutoV2, AutoV3, BLAKE3 lower-cased; ``CRC32``, which Civitai prints byte-reversed,
converted back to the zlib value as 8 lower-case hex digits.

Example:
    >>> host = CivitaiHost.from_env()  # doctest: +SKIP
    >>> next(host.parse_page(host.fetch_page(None, limit=3))).files[0].hashes
    ... # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar, Unpack

from modelscan.errors import UnexpectedResponse
from modelscan.records import LineageRef, Listing, RemoteFile, crc32_from_civitai
from modelscan.registry.base import HostOptions, Page, host_client
from modelscan.registry.http import HttpClient, join_url, strip_api_path
from modelscan.registry.parsing import (
    ItemError,
    as_mapping,
    filter_key,
    listed_items,
    parse_items,
    parse_time,
    replace,
)

DEFAULT_BASE_URL = "https://civitai.com"
BASE_URL_ENV = "MODELSCAN_CIVITAI_URL"
TOKEN_ENV = "CIVITAI_API_TOKEN"
PAGE_SIZE = 100  # the API's maximum ``limit``
SORT = "Newest"  # new models first: a resumed pass does not skip what was added
MODES = {"Archived": "archived", "TakenDown": "taken_down"}
# Civitai hash names -> ours (SHA256 goes to RemoteFile.sha256, CRC32 is converted).
HASH_NAMES = {
    "AutoV1": "autov1",
    "AutoV2": "autov2",
    "AutoV3": "autov3",
    "BLAKE3": "blake3",
}
MODEL_EXTRA = ("checkpointType", "nsfw", "poi", "allowCommercialUse",
               "allowDerivatives", "allowNoCredit", "mode", "tags")  # fmt: skip
FILE_EXTRA = (
    "id",
    "type",
    "pickleScanResult",
    "pickleScanMessage",
    "virusScanResult",
    "virusScanMessage",
    "scannedAt",
    "primary",
    "metadata",
)
# checkpointType (Civitai's words) -> our relation to the declared base model.
CHECKPOINT_RELATIONS = {"Trained": "finetune", "Merge": "merge"}
TYPE_RELATIONS = {
    "LORA": "adapter",
    "LoCon": "adapter",
    "DoRA": "adapter",
    "TextualInversion": "adapter",
    "Hypernetwork": "adapter",
}


def base_url_from_env(endpoint: str | None = None) -> str:
    """Return ``--endpoint``, else ``MODELSCAN_CIVITAI_URL``, else civitai.com."""
    given = endpoint or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return strip_api_path(given, "/api/v1")


# --- pure parsing ---------------------------------------------------------------------


def parse_hashes(hashes: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    """Split Civitai's ``hashes`` into our sha256 and the other hashes, our spelling.

    >>> parse_hashes({"SHA256": "AB12", "CRC32": "85114A0D", "AutoV2": "AB12"})
    ('ab12', {'autov2': 'ab12', 'crc32': '0d4a1185'})
    """
    sha = hashes.get("SHA256")
    out = {
        ours: str(hashes[theirs]).lower()
        for theirs, ours in HASH_NAMES.items()
        if isinstance(hashes.get(theirs), str) and hashes[theirs]
    }
    crc = hashes.get("CRC32")
    if isinstance(crc, str) and len(crc) == 8:
        with contextlib.suppress(ValueError):  # not hex: keep nothing, not a guess
            out["crc32"] = f"{crc32_from_civitai(crc):08x}"
    return (sha.lower() if isinstance(sha, str) and sha else None), out


def parse_file(item: Mapping[str, Any], *, version: Mapping[str, Any]) -> RemoteFile:
    """One ``modelVersions[].files[]`` entry as a RemoteFile.

    ``published_at`` is the version's ``publishedAt`` (else its ``createdAt``).
    """
    sha, hashes = parse_hashes(item.get("hashes") or {})
    size_kb = item.get("sizeKB")
    extra = {k: item[k] for k in FILE_EXTRA if item.get(k) is not None}
    extra.update(version_id=version.get("id"), base_model=version.get("baseModel"))
    return RemoteFile(
        path="/".join(
            str(p)
            for p in (version.get("id"), item.get("id"), item.get("name"))
            if p is not None
        ),
        size=round(size_kb * 1024) if isinstance(size_kb, int | float) else None,
        sha256=sha,
        url=str(item.get("downloadUrl") or version.get("downloadUrl") or ""),
        hashes=hashes,
        extra=extra,
        published_at=version_date(version),
    )


def version_date(version: Mapping[str, Any]) -> datetime | None:
    """When a version was published (``publishedAt``, else ``createdAt``)."""
    return parse_time(version.get("publishedAt") or version.get("createdAt"))


def parse_lineage(model: Mapping[str, Any]) -> tuple[LineageRef, ...]:
    """Declared base models of a model's versions (free text such as ``SD 1.5``)."""
    relation = (
        CHECKPOINT_RELATIONS.get(str(model.get("checkpointType")))
        or TYPE_RELATIONS.get(str(model.get("type")))
        or "unknown"
    )
    seen: dict[str, LineageRef] = {}
    for version in model.get("modelVersions") or []:
        base = version.get("baseModel") if isinstance(version, Mapping) else None
        if isinstance(base, str) and base and base not in seen and base != "Other":
            seen[base] = LineageRef(base, relation, "declared-card")
    return tuple(seen.values())


def _version_summary(version: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "name",
        "baseModel",
        "baseModelType",
        "publishedAt",
        "createdAt",
        "status",
        "availability",
        "nsfwLevel",
    )
    return {k: version[k] for k in keys if version.get(k) is not None}


def parse_model(
    item: Mapping[str, Any], *, base_url: str = DEFAULT_BASE_URL
) -> tuple[Listing, ...]:
    """Turn one ``/api/v1/models`` item into one Listing per version, newest first.

    Every listing carries the model's fields (owner, counts, ``mode``) and the
    declared base models of all versions; ``revision`` and ``files`` are the
    version's own. A model without versions gives one listing without revision.

    Raises:
        UnexpectedResponse: the item lacks ``id`` or ``modelVersions`` is not a list.
    """
    url = join_url(base_url, "/api/v1/models")
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), int):
        raise UnexpectedResponse(
            "civitai", url, None, f"model without 'id': {str(item)[:80]}"
        )
    versions = item.get("modelVersions")
    if not isinstance(versions, list) or not all(
        isinstance(v, Mapping) for v in versions
    ):
        raise UnexpectedResponse(
            "civitai", url, None, f"model {item['id']}: 'modelVersions' is not a list"
        )
    stats, creator = as_mapping(item.get("stats")), as_mapping(item.get("creator"))
    extra = {k: item[k] for k in MODEL_EXTRA if item.get(k) is not None}
    extra["versions"] = [_version_summary(v) for v in versions]
    model = Listing(
        host="civitai",
        host_id=str(item["id"]),
        name=str(item.get("name") or item["id"]),
        owner=creator.get("username"),
        url=f"{base_url.rstrip('/')}/models/{item['id']}",
        revision=None,
        updated_at=None,
        status=MODES.get(str(item.get("mode")), "live"),
        kind=item.get("type"),
        downloads=stats.get("downloadCount"),
        likes=stats.get("thumbsUpCount"),
        lineage=parse_lineage(item),
        extra=extra,
        published_at=min(filter(None, map(version_date, versions)), default=None),
        downloads_all_time=stats.get("downloadCount"),  # Civitai counts all time
    )
    newest_first = sorted(versions, key=lambda v: -int(v.get("id") or 0))
    return tuple(_version_listing(model, v) for v in newest_first) or (model,)


def _version_listing(model: Listing, version: Mapping[str, Any]) -> Listing:
    files = tuple(
        parse_file(f, version=version)
        for f in version.get("files") or []
        if isinstance(f, Mapping)
    )
    return replace(
        model,
        revision=str(version["id"]) if version.get("id") is not None else None,
        updated_at=version_date(version),
        files=files,
    )


def _model_label(index: int, item: Any) -> str:
    """Name a bad item of a page by its model id, else its place on the page."""
    return f"model {item.get('id', index) if isinstance(item, Mapping) else index}"


def parse_next_cursor(payload: Mapping[str, Any]) -> str | None:
    """The cursor of the next page, or None on the last one."""
    metadata = payload.get("metadata")
    cursor = metadata.get("nextCursor") if isinstance(metadata, Mapping) else None
    return str(cursor) if cursor not in (None, "") else None


# --- the host -------------------------------------------------------------------------


class CivitaiHost:
    """Crawl Civitai's REST v1 ``/api/v1/models`` with cursors.

    Args:
        client: the shared HTTP client for this host.
        base_url: Civitai's URL (``MODELSCAN_CIVITAI_URL``, ``--endpoint``).
        author: only this creator's models (``username``).
        search: only models matching this text (``query``).
        tag: only models with this tag.
    """

    name: ClassVar[str] = "civitai"

    def __init__(
        self,
        client: HttpClient,
        base_url: str = DEFAULT_BASE_URL,
        *,
        author: str | None = None,
        search: str | None = None,
        tag: str | None = None,
    ) -> None:
        self.client = client
        self.base_url = strip_api_path(base_url, "/api/v1")
        self.filters = {
            k: v
            for k, v in (("username", author), ("query", search), ("tag", tag))
            if v
        }
        self.cursor_key = filter_key(self.filters)
        self.complete_listing = not self.filters

    @classmethod
    def from_env(cls, **options: Unpack[HostOptions]) -> CivitaiHost:
        """Build the host from the environment (``MODELSCAN_CIVITAI_URL``, token)."""
        token = options.get("token") or os.environ.get(TOKEN_ENV) or None
        return cls(
            host_client(cls.name, options, token=token, token_env=TOKEN_ENV),
            base_url_from_env(options.get("endpoint")),
            author=options.get("author"),
            search=options.get("search"),
            tag=options.get("tag"),
        )

    def fetch_page(self, cursor: str | None, *, limit: int | None = None) -> Page:
        """GET one page of models, newest first."""
        params: dict[str, str] = {
            **self.filters,
            "sort": SORT,
            "limit": str(min(limit, PAGE_SIZE) if limit else PAGE_SIZE),
        }
        if cursor is not None:
            params["cursor"] = cursor
        answer = self.client.get_json(
            join_url(self.base_url, "/api/v1/models"), params=params
        )
        listed_items(self.name, answer, "items")
        data = answer.data
        return Page(data, parse_next_cursor(data), cursor)

    def parse_page(self, page: Page) -> Iterator[Listing | ItemError]:
        """Listings of one page (pure); a malformed item becomes an ItemError."""
        return parse_items(
            page.payload["items"],
            lambda item: parse_model(item, base_url=self.base_url),
            _model_label,
        )

    def needs_details(
        self, listing: Listing, known: bool, revision: str | None
    ) -> bool:
        """Never: a list item already carries every version and file."""
        return False

    def fetch_details(self, listing: Listing) -> Listing:
        """Nothing to add (see :meth:`needs_details`)."""
        return listing

    def check(self, host_id: str) -> str | None:
        """Status of a model the last full pass did not list: 404 means gone."""
        try:
            answer = self.client.get_json(
                join_url(self.base_url, f"/api/v1/models/{host_id}")
            )
        except UnexpectedResponse as exc:
            if exc.status in (404, 410):
                return "gone"
            raise
        if not isinstance(answer.data, Mapping):
            return None
        return MODES.get(str(answer.data.get("mode")), "live")
