"""ModelScope (Alibaba's hub): models page by page, recursive file listings with sha256.

Requests follow the official client, ``modelscope/hub/api.py`` (``HubApi``), but go
through our :class:`~modelscan.registry.http.HttpClient` (one failure policy, one
pace) instead of ``HubApi``'s own session: installing ``modelscope`` pulls heavy
dependencies and its session retries on its own terms. The endpoint and token
are the ecosystem's own variables, ``MODELSCOPE_ENDPOINT`` (default
``https://www.modelscope.cn``) and ``MODELSCOPE_API_TOKEN``.

- List: ``PUT /api/v1/models/`` with ``{"Path": OWNER, "PageNumber": n,
  "PageSize": m}`` (``HubApi.list_models``) for ``--author``; without it the
  site's catalogue ``PUT /api/v1/dolphin/models`` with the same page keys. Every
  answer is an envelope ``{"Code", "Data", "Message", "Success"}``; the saved
  cursor is the next page number.
- Files of a new or changed model: ``GET /api/v1/models/{id}/repo/files?
  Revision=master&Recursive=True`` (``HubApi.get_model_files``): each blob's
  ``Path``, ``Size`` and ``Sha256`` (small non-LFS files carry one too).
- Card: ``README.md`` through the file URL ``/api/v1/models/{id}/repo?
  Revision=master&FilePath=README.md``; its front matter's ``base_model`` is a
  declared parent, a link to the same repo on Hugging Face a declared mirror
  (``copy``), other Hugging Face links parents of unknown relation.
- Incremental: a model whose ``LastUpdatedTime`` (the revision) did not change
  costs no file listing. Gone: ``GET /api/v1/models/{id}`` answering 404 (or an
  envelope saying it does not exist); a model answering under another id renamed.

Shapes and where each came from: ``tests/data/hosts/modelscope/SOURCES.md``.

Example:
    >>> host = ModelScopeHost.from_env(author="Qwen")  # doctest: +SKIP
    >>> [x.host_id for x in host.parse_page(host.fetch_page(None))][:2]
    ... # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Unpack
from urllib.parse import quote

from modelscan.errors import UnexpectedResponse
from modelscan.records import LineageRef, Listing, RemoteFile
from modelscan.refs import find_links
from modelscan.registry.base import HostOptions, Page, host_client
from modelscan.registry.http import HttpClient, join_url, raise_for_status
from modelscan.registry.parsing import (
    ItemError,
    as_mapping,
    filter_key,
    parse_items,
    replace,
)

DEFAULT_BASE_URL = "https://www.modelscope.cn"
BASE_URL_ENV = "MODELSCOPE_ENDPOINT"  # the official client's variable
TOKEN_ENV = "MODELSCOPE_API_TOKEN"  # the official client's variable
PAGE_SIZE = 100
REVISION = "master"  # ModelScope's default branch (DEFAULT_MODEL_REVISION)
MAX_FILES = 100_000  # a listing with more entries is refused
MAX_CARD_BYTES = 1 << 20  # a README longer than this is not parsed
SKIPPED_FILES = (".gitignore", ".gitattributes")  # HubApi.get_model_files skips them
RELATIONS = frozenset({"adapter", "merge", "quantized", "finetune"})
MODEL_EXTRA = ("ChineseName", "Tasks", "Frameworks", "Libraries", "CreatedTime",
               "LastUpdatedTime", "Visibility", "BaseModel",
               "OriginalModelId")  # fmt: skip


def base_url_from_env(endpoint: str | None = None) -> str:
    """Return ``--endpoint``, else ``MODELSCOPE_ENDPOINT``, else www.modelscope.cn."""
    return (endpoint or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


# --- pure parsing ---------------------------------------------------------------------


def envelope_data(host_url: str, status: int, payload: Any) -> Any:
    """The ``Data`` of a ModelScope answer; UnexpectedResponse when it says failure."""
    if not isinstance(payload, Mapping) or "Data" not in payload:
        raise UnexpectedResponse(
            "modelscope", host_url, status, f"no 'Data' envelope: {str(payload)[:80]}"
        )
    if payload.get("Success") is False or payload.get("Code") not in (None, 200):
        raise UnexpectedResponse(
            "modelscope",
            host_url,
            status,
            f"Code {payload.get('Code')}: {str(payload.get('Message'))[:80]}",
        )
    return payload["Data"]


def page_models(data: Any) -> tuple[list[Any], int | None]:
    """The models of a list page and the total count it states.

    ``HubApi.list_models`` answers ``Data: {"Models": [...], "TotalCount": n}``;
    the catalogue nests the same under ``Data.Model``.
    """
    data = as_mapping(data)
    inner = as_mapping(data.get("Model")) if "Model" in data else data
    models = inner.get("Models")
    total = inner.get("TotalCount")
    return (
        models if isinstance(models, list) else [],
        total if isinstance(total, int) else None,
    )


def _ms_ref(value: str) -> str:
    """A base model named by a ModelScope card: a ModelScope id, else as given."""
    value = value.strip()
    if "://" in value:
        links = find_links(value)
        return links[0] if links else value
    return f"modelscope:{value}" if value.count("/") == 1 else value


def listed_parents(host_id: str, extra: Mapping[str, Any]) -> list[LineageRef]:
    """Parents a list item names: ``BaseModel``, ``OriginalModelId``.

    They are the fields ``HubApi.create_model`` sends; they are declared with the
    details (:meth:`ModelScopeHost.fetch_details`), where the card's words win.
    """
    refs: list[LineageRef] = []
    for key in ("BaseModel", "OriginalModelId"):
        parent = extra.get(key)
        if isinstance(parent, str) and parent.strip() and parent != host_id:
            ref = LineageRef(_ms_ref(parent), "finetune", "declared-card")
            if ref not in refs:
                refs.append(ref)
    return refs


def parse_model(item: Any, *, base_url: str = DEFAULT_BASE_URL) -> Listing:
    """One list item as a Listing (revision: its ``LastUpdatedTime``).

    Its declared parents are added by :meth:`ModelScopeHost.fetch_details`
    (:func:`listed_parents` and the card together): an unchanged model seen
    again declares nothing the first visit did not.

    Raises:
        UnexpectedResponse: the item has no ``Path`` (owner) and ``Name``.
    """
    if not isinstance(item, Mapping) or not all(
        isinstance(item.get(k), str) and item[k] for k in ("Path", "Name")
    ):
        raise UnexpectedResponse(
            "modelscope",
            join_url(base_url, "/api/v1/models"),
            None,
            f"model without Path/Name: {str(item)[:80]}",
        )
    host_id = f"{item['Path']}/{item['Name']}"
    updated = item.get("LastUpdatedTime")
    license_ = item.get("License")
    return Listing(
        host="modelscope",
        host_id=host_id,
        name=str(item["Name"]),
        owner=str(item["Path"]),
        url=f"{base_url.rstrip('/')}/models/{host_id}",
        revision=str(updated) if updated is not None else None,
        updated_at=_unix(updated),
        published_at=_unix(item.get("CreatedTime")),
        kind=_first(item.get("Tasks")),
        license=str(license_) if isinstance(license_, str) and license_ else None,
        downloads=_int(item.get("Downloads")),
        downloads_all_time=_int(item.get("Downloads")),  # ModelScope counts all time
        likes=_int(item.get("Stars")),
        extra={k: item[k] for k in MODEL_EXTRA if item.get(k) not in (None, "", [])},
    )


def _unix(value: Any) -> datetime | None:
    """A ModelScope time (Unix seconds) as an aware UTC datetime; None if absent."""
    seconds = _int(value)
    if seconds is None or not 0 < seconds < 1 << 32:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first(value: Any) -> str | None:
    """The first task name of ``Tasks`` (a list of names or of ``{"Name": ...}``)."""
    if isinstance(value, list) and value:
        head = value[0]
        name = head.get("Name") if isinstance(head, Mapping) else head
        return str(name) if isinstance(name, str) else None
    return value if isinstance(value, str) else None


def file_url(base_url: str, host_id: str, path: str) -> str:
    """The download URL of a file (``HubApi.get_file_download_url``'s form)."""
    return join_url(
        base_url,
        f"/api/v1/models/{host_id}/repo?Revision={REVISION}&FilePath={quote(path)}",
    )


def parse_files(
    data: Any, *, host_id: str, base_url: str = DEFAULT_BASE_URL
) -> tuple[RemoteFile, ...]:
    """The blobs of a recursive file listing (``Data.Files``), folders left out.

    Raises:
        UnexpectedResponse: ``Files`` is not a list, or longer than MAX_FILES.
    """
    files = as_mapping(data).get("Files")
    if files is None:
        return ()  # HubApi.get_model_files: an empty repo answers no Files
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise UnexpectedResponse(
            "modelscope", base_url, None, f"{host_id}: 'Files' is not a short list"
        )
    out: list[RemoteFile] = []
    for entry in files:
        if not isinstance(entry, Mapping) or entry.get("Type") == "tree":
            continue
        path = entry.get("Path")
        if not isinstance(path, str) or not path or entry.get("Name") in SKIPPED_FILES:
            continue
        sha = entry.get("Sha256")
        extra = {k: entry[k] for k in ("IsLFS", "CommittedDate", "Revision")
                 if entry.get(k) is not None}  # fmt: skip
        out.append(
            RemoteFile(
                path=path,
                size=_int(entry.get("Size")),
                sha256=sha.lower() if isinstance(sha, str) and len(sha) == 64 else None,
                url=file_url(base_url, host_id, path),
                extra=extra,
                published_at=_unix(entry.get("CommittedDate")),
            )
        )
    return tuple(out)


def front_matter(card: str, keys: tuple[str, ...]) -> dict[str, str | list[str]]:
    r"""Top-level ``keys`` of a card's YAML front matter: a scalar or a ``- item`` list.

    Only what lineage needs is read (no YAML library: none is a dependency);
    other keys and nested mappings are skipped.

    >>> front_matter("---\nbase_model:\n- a/b\nlicense: mit\n---\n", ("base_model",))
    {'base_model': ['a/b']}
    """
    if not card.startswith("---"):
        return {}
    head, sep, _ = card[3:].partition("\n---")
    found: dict[str, str | list[str]] = {}
    current: str | None = None
    for line in head.splitlines() if sep else []:
        item = line.strip()
        if current is not None and item.startswith("- "):
            listed = found.setdefault(current, [])
            if isinstance(listed, list):
                listed.append(_unquote(item[2:]))
            continue
        key, colon, value = line.partition(":")
        current = None
        if colon and not line[:1].isspace() and key.strip() in keys:
            if value.strip():
                found[key.strip()] = _unquote(value)
            else:
                current = key.strip()
    return found


def _unquote(value: str) -> str:
    return value.strip().strip("'\"").strip()


def parse_card_lineage(host_id: str, card: str) -> tuple[LineageRef, ...]:
    """Parents a card declares: ``base_model``, Hugging Face and Ollama links.

    A link to a Hugging Face repo of the same name (any owner: ModelScope
    mirrors live under ``AI-ModelScope``, ``LLM-Research``, ...) is a declared
    mirror (relation ``copy``); other Hugging Face links, and Ollama tags (which
    a later ``crawl --host ollama`` reads), are parents of unknown relation.
    """
    meta = front_matter(card[:MAX_CARD_BYTES], ("base_model", "base_model_relation"))
    named = meta.get("base_model") or []
    names = [named] if isinstance(named, str) else named
    stated = meta.get("base_model_relation")
    relation = stated if isinstance(stated, str) and stated in RELATIONS else "finetune"
    refs: dict[str, LineageRef] = {}
    for parent in names:
        if parent:
            ref = _ms_ref(parent)
            refs.setdefault(ref, LineageRef(ref, relation, "declared-card"))
    for link in find_links(card[:MAX_CARD_BYTES], hosts=("huggingface", "ollama")):
        same_name = (
            link.rsplit("/", 1)[-1].lower() == host_id.rsplit("/", 1)[-1].lower()
        )
        mirror = link.startswith("hf:") and same_name
        refs.setdefault(
            link,
            LineageRef(link, "copy" if mirror else "unknown", "declared-description"),
        )
    return tuple(refs.values())


# --- the host -------------------------------------------------------------------------


class ModelScopeHost:
    """Crawl ModelScope's model list, with files and cards of new or changed models.

    Args:
        client: the shared HTTP client for this host.
        base_url: ModelScope's URL (``MODELSCOPE_ENDPOINT``, ``--endpoint``).
        author: only this owner's or organisation's models (``Path``).
    """

    name: ClassVar[str] = "modelscope"

    def __init__(
        self,
        client: HttpClient,
        base_url: str = DEFAULT_BASE_URL,
        *,
        author: str | None = None,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.author = author
        self.cursor_key = filter_key({"author": author} if author else {})
        self.complete_listing = not author

    @classmethod
    def from_env(cls, **options: Unpack[HostOptions]) -> ModelScopeHost:
        """Build the host from ``MODELSCOPE_ENDPOINT`` and ``MODELSCOPE_API_TOKEN``.

        Raises:
            ValueError: --search or --filter (the list call takes an owner only).
        """
        if options.get("search") or options.get("tag"):
            raise ValueError("ModelScope's model list takes --author, not "
                             "--search or --filter")  # fmt: skip
        token = options.get("token") or os.environ.get(TOKEN_ENV) or None
        return cls(
            host_client(cls.name, options, token=token, token_env=TOKEN_ENV),
            base_url_from_env(options.get("endpoint")),
            author=options.get("author"),
        )

    def fetch_page(self, cursor: str | None, *, limit: int | None = None) -> Page:
        """PUT one list page (page numbers from 1; the cursor is the number).

        Pages are always PAGE_SIZE long, ``limit`` or not: a page number means
        the same models only at one size (the loop cuts a page to ``--limit``
        and keeps its cursor on it).
        """
        number = int(cursor) if cursor and cursor.isdigit() else 1
        size = PAGE_SIZE
        body: dict[str, Any] = {"PageNumber": number, "PageSize": size}
        path = "/api/v1/dolphin/models"
        if self.author:
            path, body = "/api/v1/models/", {"Path": self.author, **body}
        else:
            body.update(SortBy="Default", Target="", SingleCriterion=[])
        data = self._json("PUT", join_url(self.base_url, path), body)
        models, total = page_models(data)
        more = len(models) >= size and (total is None or number * size < total)
        return Page(models, str(number + 1) if more else None, cursor)

    def parse_page(self, page: Page) -> Iterator[Listing | ItemError]:
        """Listings of one page (pure); a malformed item becomes an ItemError."""
        return parse_items(
            page.payload,
            lambda item: parse_model(item, base_url=self.base_url),
            f"page {page.cursor or '1'} model",
        )

    def needs_details(
        self, listing: Listing, known: bool, revision: str | None
    ) -> bool:
        """A new model, or one whose LastUpdatedTime moved, needs files and card."""
        return not known or revision != listing.revision or listing.revision is None

    def fetch_details(self, listing: Listing) -> Listing:
        """Add the recursive file listing and the card's lineage (404: gone)."""
        url = join_url(self.base_url, f"/api/v1/models/{listing.host_id}/repo/files")
        try:
            data = self._json(
                "GET", url, params={"Revision": REVISION, "Recursive": "True"}
            )
        except UnexpectedResponse as exc:
            if exc.status in (404, 410):
                return replace(listing, status="gone")
            raise
        files = parse_files(data, host_id=listing.host_id, base_url=self.base_url)
        parents = [*listing.lineage, *listed_parents(listing.host_id, listing.extra)]
        lineage = {ref.parent: ref for ref in parents}
        if any(f.path == "README.md" for f in files):
            card = self._card(listing.host_id)  # its words win over the list's
            lineage.update(
                (r.parent, r) for r in parse_card_lineage(listing.host_id, card)
            )
        return replace(listing, files=files, lineage=tuple(lineage.values()))

    def check(self, host_id: str) -> str | None:
        """A model the last full pass did not list: gone, renamed, or live."""
        url = join_url(self.base_url, f"/api/v1/models/{host_id}")
        try:
            data = self._json("GET", url)
        except UnexpectedResponse as exc:
            if exc.status in (404, 410) or (exc.status == 200):
                return "gone"  # 404, or an envelope saying it does not exist
            raise
        data = as_mapping(data)
        seen = f"{data.get('Path')}/{data.get('Name')}"
        return "renamed" if data.get("Name") and seen != host_id else "live"

    def _json(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request under the failure policy; the envelope's ``Data``."""
        content = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if content else None
        response = self.client.send(method, url, params=params, headers=headers,
                                    content=content, expect_json=True)  # fmt: skip
        raise_for_status(self.name, response, token_env=TOKEN_ENV)
        return envelope_data(response.url, response.status_code, response.json())

    def _card(self, host_id: str) -> str:
        """The model's README.md (empty when it cannot be read)."""
        response = self.client.send("GET", file_url(self.base_url, host_id,
                                                    "README.md"))  # fmt: skip
        if not 200 <= response.status_code < 300:
            return ""
        return response.content[:MAX_CARD_BYTES].decode("utf-8", "replace")
