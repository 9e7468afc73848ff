"""Read hosted model files through HTTP Range requests, and fingerprint them.

:class:`HttpRangeReader` is the scanner's ``RangeReader`` over HTTP. The first
request goes to the URL the user named (a Hub ``/resolve/`` URL, a Civitai
download URL, any Range-capable server), with the host's token. A redirect to
another origin (the Hub's signed CDN URL) is remembered: every later Range GET
goes straight there, without the token. A 403 from that origin means the
signature expired: the reader resolves again, once per expiry. Transient
failures (connection errors, 408/429/5xx) are retried with the HttpClient's
retry count and backoff; ``Retry-After`` is obeyed.

Reads are cached in memory (a file's metadata and a few windows), counted
(``requests``, ``bytes_received``) and capped: at most ``max_requests``
requests per file. A server that answers a Range request with 200 and the
whole body is refused on that first answer and the connection closed before
the body is read.

:func:`fetch_remote_fingerprint` turns ``hf://OWNER/NAME/PATH[@REVISION]``,
``civitai://VERSION_ID[/FILE_ID]`` or an ``http(s)://`` URL into a
:class:`~modelscan.records.Fingerprint` (``scanner/remote.py`` decides what to
read). A crawl calls it once per blob.

Example:
    >>> fp = fetch_remote_fingerprint("hf://sentence-transformers/all-MiniLM-L6-v2"
    ...                               "/model.safetensors")  # doctest: +SKIP
    >>> fp.structure_id, fp.remote.requests, fp.remote.bytes  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
import urllib3

from modelscan.errors import HostError, ModelscanError, TruncatedFile
from modelscan.records import Fingerprint
from modelscan.registry.http import (
    MAX_WAIT,
    RETRY_STATUSES,
    HttpClient,
    join_url,
    rebase,
    wait_hint,
)

logger = logging.getLogger(__name__)

MAX_REQUESTS = 40  # per file (DESIGN.md section 4, "Remote fingerprints")
READ_AHEAD = 64 * 1024  # a read that misses the cache fetches at least this much
MAX_READ_AHEAD = 256 * 1024  # a sequential parser's read goes at most this far
# The first request: magic bytes and most headers. huggingface_hub's
# HfApi.parse_safetensors_file_metadata asks for bytes=0-100000 first ("97% of
# safetensors files have a metadata size < 100kb"); 64 KiB is the sniffing window
# the local path reads too, and a longer header costs one more request.
FIRST_READ = 64 * 1024
MAX_REDIRECTS = 5
MAX_RESOLVES = 3  # the first resolve and two more after expired signatures
HF_ENDPOINT = "https://huggingface.co"
CIVITAI_URL = "https://civitai.com"
# huggingface_hub constants.py: HUGGINGFACE_HEADER_X_LINKED_SIZE / _X_LINKED_ETAG.
# file_download.get_hf_file_metadata prefers them to Content-Length/ETag on the
# resolve answer (they describe the LFS object behind the redirect); for LFS
# files the etag is the file's sha256 (huggingface_hub issue 3018), for plain git
# files a git blob sha1 (40 hex), which is no sha256 and is ignored here.
LINKED_SIZE = "X-Linked-Size"
LINKED_ETAG = "X-Linked-Etag"
IGNORES_RANGE = (
    "the server ignores Range requests; download the file and fingerprint it locally"
)
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class RemoteError(HostError):
    """A remote file could not be read; the message names what the user typed.

    The signed CDN URL (its query is a credential) and tokens never appear.
    """

    def __init__(self, url: str, message: str) -> None:
        self.host = "remote"
        self.url = url
        ModelscanError.__init__(self, f"{url}: {message}")


class RangeNotSupported(RemoteError):
    """The server answered a Range request with the whole file."""

    def __init__(self, url: str) -> None:
        super().__init__(url, IGNORES_RANGE)


class BudgetExceeded(RemoteError):
    """Reading the file would take more requests than the per-file budget."""


@dataclass(frozen=True, slots=True)
class RemoteTarget:
    """What to read: the first URL, its token, and what the host states."""

    ref: str  # what the user named, used in records and messages
    url: str  # first URL to GET (resolve or download URL)
    host: str  # "huggingface", "civitai" or "http"
    token: str | None = None  # sent to the first URL's origin only
    token_env: str = ""
    sha256: str | None = None  # host-stated (Civitai's published SHA256)


def _release(response: requests.Response) -> None:
    """Give a fully read connection back to the pool (keep-alive), else close it.

    ``Response.close`` would close the socket, as the body was read through
    ``raw``: one TCP and TLS handshake per range on a real CDN.
    """
    raw = response.raw
    if getattr(raw, "length_remaining", None) == 0 and hasattr(raw, "release_conn"):
        raw.release_conn()
    else:
        response.close()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``bytes 0-99/1234`` -> (0, 99, 1234); total None for ``*``.

    >>> _parse_content_range("bytes 0-99/1234")
    (0, 99, 1234)
    """
    match = _CONTENT_RANGE.match(value or "")
    if match is None:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


def _etag_sha256(value: str | None) -> str | None:
    """The sha256 in an ETag (``W/"..."`` or ``"..."``), if it is one."""
    if not value:
        return None
    tag = value.strip().removeprefix("W/").strip('"').lower()
    return tag if _SHA256.match(tag) else None


class HttpRangeReader:
    """A cached, counted, capped ``RangeReader`` over HTTP Range requests.

    Args:
        url: the first URL (resolve or download URL).
        client: the HttpClient whose session, User-Agent, rate limit, timeouts,
            retry count and backoff are used.
        name: what messages call the file (default ``url``).
        token: bearer token for ``url``'s origin (never sent after a redirect
            to another origin).
        token_env: the env var the token comes from, named in auth errors.
        max_requests: requests allowed for this file (resolves included).
        max_bytes: body bytes allowed for this file (None: the parsers' own
            caps and the scanner's plan bound them); a crawl sets its budget.
        sleep: how to wait between retries (tests pass a fake).
    """

    def __init__(
        self,
        url: str,
        *,
        client: HttpClient,
        name: str | None = None,
        token: str | None = None,
        token_env: str = "",
        max_requests: int = MAX_REQUESTS,
        max_bytes: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.max_bytes = max_bytes
        self._name = name or url
        self._client = client
        self._token = token
        self._token_env = token_env
        self.max_requests = max_requests
        self._sleep = sleep
        self._size: int | None = None
        self._data_url: str | None = None  # the signed URL after a cross-origin hop
        self._data_token = False
        self._chunks: list[tuple[int, bytes]] = []  # sorted, disjoint, not adjacent
        self.requests = 0
        self.bytes_received = 0
        self.resolves = 0
        self.stated_size: int | None = None
        self.stated_sha256: str | None = None

    # --- RangeReader ----------------------------------------------------------------

    @property
    def size(self) -> int:
        """The file's size (from the first answer's Content-Range)."""
        if self._size is None:
            self.open()
        assert self._size is not None
        return self._size

    @property
    def name(self) -> str:
        """What the user named, for messages."""
        return self._name

    def open(self) -> None:
        """Send the first request: learn the size, cache the first bytes."""
        if self._size is None:
            self._fetch(0, FIRST_READ)

    def read_at(self, offset: int, n: int) -> bytes:
        """Return exactly ``n`` bytes at ``offset`` (from memory when read before)."""
        self._check(offset, n)
        cached = self._cached(offset, n)
        if cached is not None:
            return cached
        gaps = self.missing(offset, offset + n)  # fetch only what is not cached
        start = gaps[0][0]
        self._fetch(start, min(self.size, max(gaps[-1][1], start + READ_AHEAD)))
        found = self._cached(offset, n)
        assert found is not None
        return found

    def read_ahead(self, offset: int, need: int, want: int) -> bytes:
        """At least ``need`` bytes at ``offset``, up to ``want`` (capped read-ahead)."""
        self._check(offset, need)
        want = max(need, min(want, self.size - offset))
        if self._cached(offset, need) is None:
            start = self.missing(offset, offset + need)[0][0]
            end = offset + max(need, min(want, MAX_READ_AHEAD))
            self._fetch(start, min(self.size, end))
        i, chunk = self._chunk_at(offset)
        stop = min(len(chunk), offset - i + want)
        return chunk[offset - i : stop]

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Fetch each range's unread part, one request per range."""
        for start, end in ranges:
            gaps = self.missing(start, min(end, self.size))
            if gaps:
                self._fetch(gaps[0][0], gaps[-1][1])

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) not read yet."""
        out = []
        pos = start
        for c_start, data in self._chunks:
            c_end = c_start + len(data)
            if c_end <= pos:
                continue
            if c_start >= end:
                break
            if c_start > pos:
                out.append((pos, c_start))
            pos = max(pos, c_end)
        if pos < end:
            out.append((pos, end))
        return out

    # --- cache ----------------------------------------------------------------------

    def _check(self, offset: int, n: int) -> None:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise TruncatedFile(
                self._name, f"needs bytes {offset}..{offset + n}, file has {self.size}"
            )

    def _chunk_at(self, offset: int) -> tuple[int, bytes]:
        for start, data in self._chunks:
            if start <= offset < start + len(data):
                return start, data
        raise AssertionError(f"no cached chunk at {offset}")  # pragma: no cover

    def _cached(self, offset: int, n: int) -> bytes | None:
        for start, data in self._chunks:
            if start <= offset and offset + n <= start + len(data):
                return data[offset - start : offset - start + n]
        return None

    def _store(self, start: int, data: bytes) -> None:
        """Insert a chunk, merging it with the chunks it overlaps or touches."""
        end = start + len(data)
        keep, parts = [], [(start, data)]
        for c_start, c_data in self._chunks:
            if c_start + len(c_data) < start or c_start > end:
                keep.append((c_start, c_data))
            else:
                parts.append((c_start, c_data))
        lo = min(p[0] for p in parts)
        buf = bytearray(max(p[0] + len(p[1]) for p in parts) - lo)
        for c_start, c_data in parts:
            buf[c_start - lo : c_start - lo + len(c_data)] = c_data
        self._chunks = sorted([*keep, (lo, bytes(buf))])

    # --- HTTP -----------------------------------------------------------------------

    def _fetch(self, start: int, end: int) -> None:
        """GET bytes [start, end) and cache them (re-resolving expired signatures)."""
        if self.max_bytes is not None and self.bytes_received + end - start > (
            self.max_bytes
        ):
            raise BudgetExceeded(
                self._name,
                f"needs more than {self.max_bytes} bytes; download the file and "
                "fingerprint it locally",
            )
        for _ in range(MAX_RESOLVES):
            response = self._open(start, end)
            if response.status_code == 403 and self._data_url is not None:
                response.close()
                logger.info(
                    "%s: signed URL expired (HTTP 403); resolving again", self._name
                )
                self._data_url = None
                self.resolves += 1
                continue
            self._store(start, self._body(response, start, end))
            return
        raise RemoteError(
            self._name, "HTTP 403 from the download URL even after resolving it again"
        )

    def _open(self, start: int, end: int) -> requests.Response:
        """Send the Range GET, following redirects; return the final answer."""
        url = self._data_url or self.url
        with_token = self._data_token if self._data_url else True
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(url, start, end, token=with_token)
            if not response.is_redirect:
                if url != self.url:
                    self._data_url, self._data_token = url, with_token
                return response
            if url == self.url:
                self._note_resolve(response.headers)
            target = urljoin(url, response.headers.get("Location", ""))
            response.close()
            if urlsplit(target).scheme not in ("http", "https"):
                raise RemoteError(self._name, "redirected to a URL that is not HTTP(S)")
            # The token stays on its own origin: never sent to the CDN.
            with_token = with_token and _origin(target) == _origin(url)
            url = target
        raise RemoteError(self._name, f"more than {MAX_REDIRECTS} redirects")

    def _note_resolve(self, headers: Mapping[str, str]) -> None:
        size = headers.get(LINKED_SIZE)
        if size and size.strip().isdigit():
            self.stated_size = int(size)
        self.stated_sha256 = (
            _etag_sha256(headers.get(LINKED_ETAG)) or self.stated_sha256
        )

    def _send(
        self, url: str, start: int, end: int, *, token: bool
    ) -> requests.Response:
        """One Range GET with the HttpClient's retry policy for transient failures."""
        headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        if token and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        attempt = 0
        while True:
            if self.requests >= self.max_requests:
                raise BudgetExceeded(
                    self._name,
                    f"needs more than {self.max_requests} requests; download the file "
                    "and fingerprint it locally",
                )
            ticket = self._client.throttle(url)
            self.requests += 1
            delay: float | None
            try:
                response = self._client.session.get(
                    url,
                    headers=headers,
                    stream=True,
                    allow_redirects=False,
                    timeout=self._client.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._client.answered(url, ticket)
                if attempt >= self._client.retries:
                    raise RemoteError(
                        self._name,
                        f"unreachable after {attempt + 1} attempts "
                        f"({type(exc).__name__}); check the network or the URL",
                    ) from None
                delay = self._backoff(attempt)
            else:
                self._client.answered(url, ticket)  # the headers are back
                if response.status_code not in RETRY_STATUSES:
                    return response
                delay = wait_hint(response.headers)
                if attempt >= self._client.retries or (delay or 0) > MAX_WAIT:
                    return response
                response.close()
                delay = self._backoff(attempt) if delay is None else delay
                logger.info(
                    "%s: HTTP %d; retrying in %.1fs",
                    self._name,
                    response.status_code,
                    delay,
                )
            self._sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        """The HttpClient's exponential backoff (no jitter: one reader, one file)."""
        return min(120.0, self._client.backoff * (2**attempt))

    def _body(self, response: requests.Response, start: int, end: int) -> bytes:
        """Check a Range answer and read exactly the bytes it must hold."""
        status = response.status_code
        try:
            if status == 206:
                data = self._partial_body(response, start, end)
            elif status == 200:
                data = self._whole_body(response, start, end)
            else:
                raise self._status_error(status)
        except BaseException:
            response.close()  # drops the connection: the rest is never read
            raise
        _release(response)
        return data

    def _partial_body(self, response: requests.Response, start: int, end: int) -> bytes:
        found = _parse_content_range(response.headers.get("Content-Range"))
        if found is None or found[0] != start or found[1] < found[0]:
            shown = (response.headers.get("Content-Range") or "none")[:60]
            raise RemoteError(
                self._name,
                f"answered bytes {start}-{end - 1} with Content-Range {shown}",
            )
        first, last, total = found
        if self._size is None:
            if total is None:
                raise RemoteError(self._name, "the server does not state the file size")
            self._size = total
            if self.stated_size is not None and self.stated_size != total:
                raise RemoteError(
                    self._name,
                    f"the host states {self.stated_size} bytes but serves {total}",
                )
        elif total is not None and total != self._size:
            raise RemoteError(
                self._name,
                f"the file changed size while read ({self._size} -> {total})",
            )
        expect = min(end, self._size) - start
        if last - first + 1 != expect:
            raise RemoteError(
                self._name,
                f"sent bytes {first}-{last} for {start}-{start + expect - 1}",
            )
        return self._read_exactly(response, expect)

    def _whole_body(self, response: requests.Response, start: int, end: int) -> bytes:
        """A 200 is only acceptable when the range asked for was the whole file."""
        length = response.headers.get("Content-Length", "")
        n = int(length) if length.isdigit() else None
        whole = (
            start == 0
            and n is not None
            and (n <= end if self._size is None else n == self._size <= end)
        )
        if not whole:
            raise RangeNotSupported(self._name)
        assert n is not None
        if self._size is None:
            self._size = n
        return self._read_exactly(response, n)

    def _read_exactly(self, response: requests.Response, n: int) -> bytes:
        """Read ``n`` body bytes; fewer or more is a clear error, not a traceback."""
        parts: list[bytes] = []
        got = 0
        try:
            while got <= n:
                chunk = response.raw.read(
                    min(1 << 20, n + 1 - got), decode_content=False
                )
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RemoteError(
                self._name,
                f"the answer broke off after {got} of {n} bytes ({type(exc).__name__})",
            ) from None
        self.bytes_received += got
        if got != n:
            what = "more" if got > n else "fewer"
            raise RemoteError(
                self._name, f"the server sent {what} bytes than the {n} asked"
            )
        return b"".join(parts)

    def _status_error(self, status: int) -> RemoteError:
        token = f"set {self._token_env}" if self._token_env else "it may need a token"
        messages = {
            401: f"HTTP 401: the host wants a valid token; {token}",
            403: f"HTTP 403: access refused (gated or private?); {token}",
            404: "HTTP 404: no such file; check the name, path and revision",
            410: "HTTP 410: the file is gone",
            416: "HTTP 416: the file is empty or shorter than stated",
            429: "HTTP 429: rate limited after retries; try again later",
        }
        text = messages.get(status)
        if text is None and status >= 500:
            text = f"HTTP {status} after retries; try again later"
        return RemoteError(self._name, text or f"unexpected answer: HTTP {status}")


# --- references -----------------------------------------------------------------------


def parse_hf_ref(ref: str, *, endpoint: str) -> tuple[str, str, str, str]:
    """Split ``hf://OWNER/NAME/PATH[@REVISION]`` into (repo, path, revision, url).

    >>> parse_hf_ref("hf://o/n/sub/m.gguf@v1", endpoint="https://hf.co")[3]
    'https://hf.co/o/n/resolve/v1/sub/m.gguf'
    """
    body = ref.removeprefix("hf://")
    revision = "main"
    head, at, tail = body.rpartition("@")
    if at and head.count("/") >= 2:
        body, revision = head, tail
    parts = body.split("/")
    if len(parts) < 3 or not all(parts) or not revision:
        raise RemoteError(ref, "expected hf://OWNER/NAME/PATH[@REVISION]")
    repo, path = "/".join(parts[:2]), "/".join(parts[2:])
    # Revision quoted whole (refs/pr/1 -> refs%2Fpr%2F1), as huggingface_hub's
    # hf_hub_url does; the path keeps its slashes.
    url = join_url(
        endpoint, f"/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"
    )
    return repo, path, revision, url


def resolve_target(
    ref: str,
    *,
    env: Mapping[str, str],
    client: HttpClient | None = None,
) -> RemoteTarget:
    """Turn what the user typed into a :class:`RemoteTarget`.

    ``hf://`` honours ``HF_ENDPOINT`` and ``HF_TOKEN``; ``civitai://`` reads the
    version from ``MODELSCAN_CIVITAI_URL`` (default civitai.com) with
    ``CIVITAI_API_TOKEN`` and takes its primary file (or FILE_ID) and the
    SHA256 Civitai publishes for it; ``http(s)://`` is read as given, no token.

    Raises:
        RemoteError: a malformed reference, or a version without that file.
        HostError: the Civitai API failed.
    """
    if ref.startswith("hf://"):
        endpoint = (env.get("HF_ENDPOINT") or HF_ENDPOINT).rstrip("/")
        url = parse_hf_ref(ref, endpoint=endpoint)[3]
        token = env.get("HF_TOKEN") or None
        return RemoteTarget(ref, url, "huggingface", token, "HF_TOKEN")
    if ref.startswith("civitai://"):
        return _civitai_target(ref, env=env, client=client)
    if ref.startswith(("http://", "https://")):
        return RemoteTarget(ref, ref, "http")
    raise RemoteError(ref, "expected hf://, civitai:// or an http(s):// URL")


def _civitai_target(
    ref: str, *, env: Mapping[str, str], client: HttpClient | None
) -> RemoteTarget:
    from modelscan.registry.civitai import BASE_URL_ENV, TOKEN_ENV, parse_hashes

    version_id, _, file_id = ref.removeprefix("civitai://").partition("/")
    if not version_id.isdigit() or (file_id and not file_id.isdigit()):
        raise RemoteError(
            ref, "expected civitai://VERSION_ID or civitai://VERSION_ID/FILE_ID"
        )
    base = (env.get(BASE_URL_ENV) or CIVITAI_URL).rstrip("/")
    token = env.get(TOKEN_ENV) or None
    api = client or HttpClient("civitai", token=token, token_env=TOKEN_ENV)
    version = api.get_json(join_url(base, f"/api/v1/model-versions/{version_id}")).data
    files = [f for f in (version or {}).get("files") or [] if isinstance(f, dict)]
    chosen = _civitai_file(files, file_id)
    if chosen is None:
        which = f"file {file_id}" if file_id else "a primary file"
        raise RemoteError(ref, f"version {version_id} lists no {which}")
    url = str(chosen.get("downloadUrl") or version.get("downloadUrl") or "")
    if not url:
        raise RemoteError(ref, "Civitai lists no download URL for this file")
    sha, _hashes = parse_hashes(chosen.get("hashes") or {})
    # Keep the download on the configured base URL (mirrors, local replay).
    return RemoteTarget(ref, rebase(url, base), "civitai", token, TOKEN_ENV, sha)


def _civitai_file(files: list[dict[str, Any]], file_id: str) -> dict[str, Any] | None:
    if file_id:
        return next((f for f in files if str(f.get("id")) == file_id), None)
    primary = [f for f in files if f.get("primary")]
    return (primary or files)[0] if files else None


def fetch_remote_fingerprint(
    ref: str | RemoteTarget,
    *,
    env: Mapping[str, str] | None = None,
    client: HttpClient | None = None,
    max_requests: int = MAX_REQUESTS,
    max_bytes: int | None = None,
    all_hashes: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Fingerprint:
    """Fingerprint a hosted file through Range requests (DESIGN.md section 4).

    A crawl that already holds a listed file passes a :class:`RemoteTarget`
    (its resolve URL, the token, the sha256 the listing states) and its own
    HttpClient, so no reference is parsed and no API call is made.

    Args:
        ref: ``hf://OWNER/NAME/PATH[@REVISION]``, ``civitai://VERSION_ID[/FILE_ID]``,
            an ``http(s)://`` URL of a server that supports Range, or a target.
        env: environment to read endpoints and tokens from (default os.environ).
        client: the HttpClient to use (default: a new one for the host).
        max_requests: request budget for this file.
        max_bytes: byte budget for this file (None: the per-file plan bounds it).
        all_hashes: a file small enough to be read whole also gets BLAKE3/CRC-32.
        sleep: how to wait between retries.

    Returns:
        The record, with ``remote`` (url, requests, bytes).

    Raises:
        RemoteError: the file could not be read remotely (ignores Range, over
            budget, bad answers, a hash that differs from the host's).
        FormatError: the bytes are not a model file modelscan reads.
    """
    from modelscan.scanner.remote import remote_fingerprint

    env = os.environ if env is None else env
    if isinstance(ref, RemoteTarget):
        target = ref
    else:
        target = resolve_target(ref, env=env, client=client)
    http = client or HttpClient(target.host, token_env=target.token_env)
    reader = HttpRangeReader(
        target.url,
        client=http,
        name=target.ref,
        token=target.token,
        token_env=target.token_env,
        max_requests=max_requests,
        max_bytes=max_bytes,
        sleep=sleep,
    )
    reader.open()
    stated = (target.sha256 or reader.stated_sha256 or "").lower() or None
    fp = remote_fingerprint(
        reader,
        url=target.ref,
        sha256=stated,
        all_hashes=all_hashes,
        max_requests=max_requests,
    )
    if stated and fp.sha256 != stated:
        raise RemoteError(
            target.ref, f"the bytes hash to {fp.sha256}, the host states {stated}"
        )
    return fp
