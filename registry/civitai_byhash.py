"""Civitai looked up by hash: which sha256 of the index does Civitai also hold?

``crawl --host civitai --by-hash`` hands this host the sha256s of the index not
yet seen on Civitai (and not asked before, unless ``--full``). A "page" is one
batch of at most 100 of them, sent as a JSON list to ``POST
/api/v1/model-versions/by-hash``, which answers the model versions holding any of
them (civitai/civitai ``src/pages/api/v1/model-versions/by-hash/index.ts``: at
most 100 SHA256 strings, 64 hex each, upper-cased by the server; the answer is a
list shaped like ``GET /api/v1/model-versions/{id}``). Each version's model is
then read in full (``GET /api/v1/models/{modelId}``), so it is saved as a normal
Civitai listing by :func:`modelscan.registry.civitai.parse_model`, every version
and file of it; a model that answers 404 is saved from the version alone.

The hashes are sorted; the saved cursor is the last hash of the last committed
batch, so a killed run resumes after it. Which hashes were asked is kept in the
index by the caller (``modelscan.db.host_inputs.mark_asked``), from
:attr:`CivitaiByHashHost.batches`, page by page as they are saved.

Example:
    >>> host = CivitaiByHashHost.from_env(hashes=["ab" * 32])  # doctest: +SKIP
    >>> crawl(host, store).as_dict()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Unpack

from modelscan.errors import UnexpectedResponse
from modelscan.records import Listing
from modelscan.registry.base import HostOptions, Page, host_client
from modelscan.registry.civitai import TOKEN_ENV, base_url_from_env, parse_model
from modelscan.registry.http import HttpClient, join_url, raise_for_status
from modelscan.registry.parsing import ItemError, parse_items

BATCH = 100  # the endpoint's maximum hashes a request
MAX_VERSIONS = 1000  # an answer with more versions than this is refused
CURSOR_KEY = "by-hash"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def parse_versions(payload: Any, url: str) -> list[Mapping[str, Any]]:
    """The model versions of a by-hash answer (a JSON list).

    Raises:
        UnexpectedResponse: not a list of objects, or too long.
    """
    if not isinstance(payload, list) or len(payload) > MAX_VERSIONS:
        raise UnexpectedResponse(
            "civitai", url, None, f"expected a list of versions: {str(payload)[:80]}"
        )
    return [v for v in payload if isinstance(v, Mapping)]


def model_ids(versions: Sequence[Mapping[str, Any]]) -> list[int]:
    """The distinct models of the versions, in first-seen order."""
    seen = [v.get("modelId") for v in versions]
    return list(dict.fromkeys(m for m in seen if isinstance(m, int)))


def model_from_version(version: Mapping[str, Any]) -> dict[str, Any]:
    """A ``/api/v1/models`` item holding one version (when the model is not served).

    The version carries its model's ``name``, ``type``, ``nsfw`` and ``poi``.
    """
    model = version.get("model")
    item: dict[str, Any] = (
        {k: v for k, v in model.items() if k != "id"}
        if isinstance(model, Mapping)
        else {}
    )
    item["id"] = version.get("modelId")
    item["modelVersions"] = [{k: v for k, v in version.items() if k != "model"}]
    return item


class CivitaiByHashHost:
    """Ask Civitai which of the given sha256s it holds, 100 a request.

    Args:
        client: the Civitai client (its token, pace and failure policy).
        base_url: Civitai's URL (``MODELSCAN_CIVITAI_URL``, ``--endpoint``).
        hashes: the sha256s to ask (lower-case hex; others are left out).
    """

    name: ClassVar[str] = "civitai"

    def __init__(
        self,
        client: HttpClient,
        base_url: str,
        *,
        hashes: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.base_url = base_url
        lowered = {h.lower() for h in hashes}
        self.hashes = sorted(h for h in lowered if _SHA256.fullmatch(h))
        self.cursor_key = CURSOR_KEY
        self.complete_listing = False  # a batch of hashes is no listing of Civitai
        self.batches: list[tuple[str, ...]] = []  # hashes asked, one tuple a page

    @classmethod
    def from_env(cls, **options: Unpack[HostOptions]) -> CivitaiByHashHost:
        """Build the host like CivitaiHost (its URL and token variables)."""
        if options.get("author") or options.get("search") or options.get("tag"):
            raise ValueError("--by-hash asks by hash: it takes no --author, "
                             "--search or --filter")  # fmt: skip
        token = options.get("token") or os.environ.get(TOKEN_ENV) or None
        return cls(
            host_client(cls.name, options, token=token, token_env=TOKEN_ENV),
            base_url_from_env(options.get("endpoint")),
            hashes=options.get("hashes") or (),
        )

    def fetch_page(self, cursor: str | None, *, limit: int | None = None) -> Page:
        """POST the next batch after ``cursor``; fetch the models of what it finds."""
        batch = tuple(h for h in self.hashes if cursor is None or h > cursor)[:BATCH]
        if not batch:
            return Page({"items": []}, None, cursor)
        url = join_url(self.base_url, "/api/v1/model-versions/by-hash")
        body = json.dumps([h.upper() for h in batch]).encode()
        response = self.client.send(
            "POST",
            url,
            content=body,
            expect_json=True,
            headers={"Content-Type": "application/json"},
        )
        raise_for_status(self.name, response, token_env=TOKEN_ENV)
        versions = parse_versions(response.json(), url)
        items = [self._model(mid, versions) for mid in model_ids(versions)]
        self.batches.append(batch)
        more = any(h > batch[-1] for h in self.hashes)
        return Page({"items": items}, batch[-1] if more else None, cursor)

    def parse_page(self, page: Page) -> Iterator[Listing | ItemError]:
        """The models found, as normal Civitai listings (one per version)."""
        return parse_items(
            page.payload["items"],
            lambda item: parse_model(item, base_url=self.base_url),
            "by-hash model",
        )

    def needs_details(
        self, listing: Listing, known: bool, revision: str | None
    ) -> bool:
        """Never: each model was read whole with its page."""
        return False

    def fetch_details(self, listing: Listing) -> Listing:
        """Nothing to add."""
        return listing

    def check(self, host_id: str) -> str | None:
        """Not asked: a batch of hashes is no complete listing."""
        return None

    def _model(self, model_id: int, versions: Sequence[Mapping[str, Any]]) -> Any:
        """The whole model of a found version; from the version when it is 404."""
        url = join_url(self.base_url, f"/api/v1/models/{model_id}")
        try:
            return self.client.get_json(url).data
        except UnexpectedResponse as exc:
            if exc.status not in (404, 410):
                raise
        found = [v for v in versions if v.get("modelId") == model_id]
        item = model_from_version(found[0])
        item["modelVersions"] = [model_from_version(v)["modelVersions"][0]
                                 for v in found]  # fmt: skip
        return item
