"""Ollama: tags of the registry by name, their manifests and the GGUF layer's digest.

The registry (``MODELSCAN_OLLAMA_URL``, default ``https://registry.ollama.ai``)
speaks the OCI distribution API but has no listing endpoint (``/v2/_catalog`` and
``tags/list`` answer 404; /work/shared/fixtures/ollama/ollama_registry_notes.md),
so the names come from the caller: ``--model NAME[:TAG]``, ``--models-from FILE``
and the tags the index already knows, handed in as ``names``. A "page" is a batch
of names; it costs no request. Each tag then costs one manifest request
(``GET /v2/<namespace>/<name>/manifests/<tag>``, official models under
``library``), whose ``Docker-Content-Digest`` is the tag's revision: a digest that
moves is a changed listing, a 404 a tag gone.

One :class:`~modelscan.records.Listing` per tag (``host_id``
``library/gemma:2b``). The GGUF layers (``application/vnd.ollama.image.model``,
``.projector``, ``.adapter``) become files named ``model.gguf`` (...) whose sha256
is the layer digest: Ollama stores the GGUF byte for byte as the blob, so the same
file on Hugging Face has the same sha256. Every layer (license, template, params,
system) is kept with its media type, size and digest in ``extra["layers"]``. A
file's URL is its blob URL (``/v2/<ns>/<name>/blobs/sha256:<hex>``), which answers
307 to the CDN: ``crawl --deep`` reads GGUF headers and sketches through it.

Example:
    >>> host = OllamaHost.from_env(names=["gemma:2b"])  # doctest: +SKIP
    >>> listing = host.fetch_details(next(host.parse_page(host.fetch_page(None))))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Unpack

from modelscan.errors import AuthRequired, UnexpectedResponse
from modelscan.records import Listing, RemoteFile
from modelscan.registry.base import HostOptions, Page, host_client
from modelscan.registry.http import HttpClient, join_url, raise_for_status
from modelscan.registry.parsing import ItemError, parse_items, replace

DEFAULT_BASE_URL = "https://registry.ollama.ai"
BASE_URL_ENV = "MODELSCAN_OLLAMA_URL"
SITE = "https://ollama.com"
DEFAULT_NAMESPACE = "library"  # official models: ``gemma:2b`` is library/gemma:2b
DEFAULT_TAG = "latest"
PAGE_SIZE = 50  # names per page: one transaction per 50 manifests
MAX_NAME_LENGTH = 256
MAX_NAMES = 100_000
MAX_LAYERS = 64  # a manifest with more is refused (a real one has 3 to 7)
# The manifest types the registry serves; without this Accept header an OCI
# registry may answer with a schema 1 manifest (Docker Registry HTTP API V2).
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    )
)
# Layers holding GGUF bytes -> the file name they get in the listing.
GGUF_LAYERS = {
    "application/vnd.ollama.image.model": "model.gguf",
    "application/vnd.ollama.image.projector": "projector.gguf",
    "application/vnd.ollama.image.adapter": "adapter.gguf",
}
LICENSE_LAYER = "application/vnd.ollama.image.license"
_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._-]*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


def base_url_from_env(endpoint: str | None = None) -> str:
    """Return ``--endpoint``, else ``MODELSCAN_OLLAMA_URL``, else registry.ollama.ai."""
    return (endpoint or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


# --- pure parsing ---------------------------------------------------------------------


def parse_name(text: str) -> str:
    """Spell a model name as the index does: ``namespace/name:tag``.

    >>> parse_name("gemma:2b"), parse_name("user/model")
    ('library/gemma:2b', 'user/model:latest')

    Raises:
        ValueError: not a registry name (the message says why).
    """
    name = text.strip().removeprefix("registry.ollama.ai/")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"not an Ollama model name: {text[:80]!r}")
    path, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        path, tag = name, DEFAULT_TAG
    parts = path.split("/")
    if len(parts) == 1:
        parts = [DEFAULT_NAMESPACE, *parts]
    if len(parts) != 2 or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise ValueError(
            f"not an Ollama model name: {text[:80]!r} (expected NAME[:TAG] or "
            "NAMESPACE/NAME[:TAG], lower case)"
        )
    if not _TAG.fullmatch(tag):
        raise ValueError(f"not an Ollama tag: {tag[:80]!r} in {text[:80]!r}")
    return f"{parts[0]}/{parts[1]}:{tag}"


def parse_names(lines: Iterable[str]) -> list[str]:
    """Names of a ``--models-from`` file: one a line, ``#`` comments, blanks skipped.

    Raises:
        ValueError: a bad name (with its line number) or more than MAX_NAMES.
    """
    names: list[str] = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if len(names) >= MAX_NAMES:
            raise ValueError(f"more than {MAX_NAMES} names")
        try:
            names.append(parse_name(text))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return names


def split_id(host_id: str) -> tuple[str, str]:
    """``library/gemma:2b`` -> (``library/gemma``, ``2b``)."""
    repo, _, tag = host_id.rpartition(":")
    return repo, tag


def site_url(host_id: str) -> str:
    """The tag's page on ollama.com (official models live under /library)."""
    repo, tag = split_id(host_id)
    return f"{SITE}/{repo}:{tag}"


def name_listing(host_id: str) -> Listing:
    """The listing of a name before its manifest is read (no revision, no files)."""
    repo, tag = split_id(host_id)
    namespace, name = repo.split("/", 1)
    shown = f"{name}:{tag}" if namespace == DEFAULT_NAMESPACE else f"{repo}:{tag}"
    return Listing(
        host="ollama",
        host_id=host_id,
        name=shown,
        owner=namespace,
        url=site_url(host_id),
        revision=None,
        updated_at=None,
    )


def _layer(item: Any, url: str) -> dict[str, Any]:
    """One layer's media type, size and sha256 hex; UnexpectedResponse if malformed."""
    digest = item.get("digest") if isinstance(item, Mapping) else None
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    size = item.get("size") if isinstance(item, Mapping) else None
    kind = item.get("mediaType") if isinstance(item, Mapping) else None
    if match is None or not isinstance(size, int) or size < 0 or not kind:
        raise UnexpectedResponse(
            "ollama", url, None, f"layer without sha256 digest/size: {str(item)[:80]}"
        )
    return {"media_type": str(kind), "size": size, "sha256": match.group(1)}


def parse_manifest(
    listing: Listing,
    manifest: Any,
    *,
    digest: str,
    base_url: str = DEFAULT_BASE_URL,
) -> Listing:
    """Complete a tag's listing from its manifest (pure).

    Args:
        listing: the tag's :func:`name_listing`.
        manifest: the decoded manifest.
        digest: the manifest's digest (``Docker-Content-Digest``): the revision.
        base_url: the registry, for the blob URLs of the files.

    Raises:
        UnexpectedResponse: not a schema 2 manifest, or a layer without digest.
    """
    repo, _ = split_id(listing.host_id)
    url = join_url(base_url, f"/v2/{repo}/manifests")
    layers = manifest.get("layers") if isinstance(manifest, Mapping) else None
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise UnexpectedResponse(
            "ollama", url, None, f"not a manifest with layers: {str(manifest)[:80]}"
        )
    parsed = [_layer(item, url) for item in layers]
    files: list[RemoteFile] = []
    for layer in parsed:
        path = GGUF_LAYERS.get(layer["media_type"])
        if path is None or any(f.path == path for f in files):
            continue
        files.append(
            RemoteFile(
                path=path,
                size=layer["size"],
                sha256=layer["sha256"],
                url=join_url(base_url, f"/v2/{repo}/blobs/sha256:{layer['sha256']}"),
                extra={"media_type": layer["media_type"]},
            )
        )
    config = manifest.get("config")
    extra: dict[str, Any] = {"layers": parsed, "manifest_digest": digest}
    if isinstance(config, Mapping) and isinstance(config.get("digest"), str):
        extra["config_digest"] = config["digest"]
    licensed = any(layer["media_type"] == LICENSE_LAYER for layer in parsed)
    return replace(
        listing,
        revision=digest,
        kind="gguf" if files else None,
        files=tuple(files),
        extra={**listing.extra, **extra, "has_license": licensed},
    )


def manifest_digest(headers: Mapping[str, str], body: bytes) -> str:
    """The manifest's digest: the registry's header, else the sha256 of its bytes.

    The digest of a manifest is the SHA-256 of the bytes served (OCI image spec,
    descriptor.md "Digests"); ``ollama list`` shows its first 12 hex as the ID.
    """
    stated = headers.get("Docker-Content-Digest", "")
    if _DIGEST.fullmatch(stated.strip()):
        return stated.strip()
    return "sha256:" + hashlib.sha256(body).hexdigest()


# --- the host -------------------------------------------------------------------------


class OllamaHost:
    """Read the manifests of the named Ollama tags (the registry lists nothing).

    Args:
        client: the shared HTTP client for this host.
        base_url: the registry (``MODELSCAN_OLLAMA_URL``, ``--endpoint``).
        names: tags to read, any spelling :func:`parse_name` takes.
    """

    name: ClassVar[str] = "ollama"

    def __init__(
        self,
        client: HttpClient,
        base_url: str = DEFAULT_BASE_URL,
        *,
        names: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.names = sorted({parse_name(n) for n in names})
        # A set of names resumes from its own cursor: another set starts afresh.
        digest = hashlib.sha1("\n".join(self.names).encode()).hexdigest()[:16]
        self.cursor_key = f"names-{digest}" if self.names else "default"
        # Every run reads all tags the index knows: one not read is asked by check().
        self.complete_listing = True
        self._known: set[str] = set()  # tags the index holds (told by needs_details)

    @classmethod
    def from_env(cls, **options: Unpack[HostOptions]) -> OllamaHost:
        """Build the host from ``MODELSCAN_OLLAMA_URL`` and the names given.

        Raises:
            ValueError: a filter is given, or a name is not a registry name.
        """
        if options.get("author") or options.get("search") or options.get("tag"):
            raise ValueError(
                "Ollama's registry has no listing: name tags with --model or "
                "--models-from instead of --author, --search or --filter"
            )
        return cls(
            # Pulls are anonymous; a token given (a private mirror's) is sent.
            host_client(cls.name, options, token=options.get("token"), token_env=""),
            base_url_from_env(options.get("endpoint")),
            names=options.get("names") or (),
        )

    def fetch_page(self, cursor: str | None, *, limit: int | None = None) -> Page:
        """The next batch of names after ``cursor`` (no request: nothing to list)."""
        rest = [n for n in self.names if cursor is None or n > cursor]
        batch = rest[: min(limit, PAGE_SIZE) if limit else PAGE_SIZE]
        more = len(rest) > len(batch)
        return Page(batch, batch[-1] if more and batch else None, cursor)

    def parse_page(self, page: Page) -> Iterator[Listing | ItemError]:
        """One listing per name of the batch, to be completed by its manifest."""
        return parse_items(page.payload, name_listing, "name")

    def needs_details(
        self, listing: Listing, known: bool, revision: str | None
    ) -> bool:
        """Always: the manifest is the only way to know whether the tag moved."""
        if known:
            self._known.add(listing.host_id)
        return True

    def fetch_details(self, listing: Listing) -> Listing:
        """GET the tag's manifest; a known tag answering 404 is gone.

        Raises:
            UnexpectedResponse: 404 for a tag the index never held (a typo, or
                a tag never published): recorded as the run's error, not gone.
            AuthRequired: 401/403, a private model.
        """
        repo, tag = split_id(listing.host_id)
        url = join_url(self.base_url, f"/v2/{repo}/manifests/{tag}")
        response = self.client.send(
            "GET", url, headers={"Accept": MANIFEST_ACCEPT}, expect_json=True
        )
        if response.status_code in (404, 410) and listing.host_id in self._known:
            return replace(listing, status="gone")
        if response.status_code in (401, 403):  # no variable to name: say what it is
            raise AuthRequired(
                self.name, url,
                f"HTTP {response.status_code}: the registry refused {listing.host_id} "
                "(a private model: pulls of public tags need no token)",
                status=response.status_code,
            )  # fmt: skip
        raise_for_status(self.name, response, token_env="")
        digest = manifest_digest(response.headers, response.content)
        return parse_manifest(
            listing, response.json(), digest=digest, base_url=self.base_url
        )

    def check(self, host_id: str) -> str | None:
        """A known tag this run did not read: gone on 404, else live."""
        self._known.add(host_id)
        done = self.fetch_details(name_listing(host_id))
        return "gone" if done.status == "gone" else "live"
