"""The one HTTP client every host module uses; the only code touching the network.

:class:`HttpClient` wraps a :class:`requests.Session` with explicit connect and read
timeouts, retries with exponential backoff and jitter on connection errors,
429 and 5xx, obeys ``Retry-After`` and Hugging Face's ``RateLimit`` header, keeps a
minimum delay between requests to one host (``--rate``), sends a User-Agent naming
the tool, and maps every failure to one :class:`~modelscan.errors.HostError`
subclass through :func:`raise_for_status`. Tokens travel in headers only and are
redacted from every message it produces.

The clock and ``sleep`` are injected so tests never really wait.

Example:
    >>> client = HttpClient("civitai", rate=2.0)  # doctest: +SKIP
    >>> client.get_json("https://civitai.com/api/v1/models", params={"limit": 1}).data
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from modelscan import __version__
from modelscan.errors import (
    AuthRequired,
    HostUnavailable,
    RateLimited,
    UnexpectedResponse,
)

logger = logging.getLogger(__name__)

USER_AGENT = f"modelscan/{__version__} (+https://github.com/modelscan-provenance)"
CONNECT_TIMEOUT = 10.0  # seconds to open a connection
READ_TIMEOUT = 60.0  # seconds between bytes of an answer
MAX_RETRIES = 5  # retries after the first attempt
BACKOFF_BASE = 1.0  # seconds; doubled per retry, then jittered
BACKOFF_MAX = 120.0  # cap of one backoff sleep
MAX_WAIT = 900.0  # a Retry-After longer than this stops the run instead of sleeping
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_RATELIMIT_RE = re.compile(r"(?:^|;)\s*r=(\d+).*?;\s*t=(\d+)")


@dataclass(frozen=True, slots=True)
class JsonResponse:
    """A decoded JSON answer with what pagination needs from its headers."""

    url: str
    status: int
    data: Any
    headers: Mapping[str, str]
    next_link: str | None  # the RFC 8288 ``Link: <...>; rel="next"`` target, if any


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every secret in ``text`` by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` value asks for (delay-seconds or HTTP-date).

    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def parse_ratelimit(value: str | None) -> float | None:
    """Return seconds until reset when Hugging Face's ``RateLimit`` says none remain.

    The header follows draft-ietf-httpapi-ratelimit-headers
    (https://huggingface.co/docs/hub/rate-limits): ``"api";r=0;t=55``.

    >>> parse_ratelimit('"api";r=0;t=55')
    55.0
    >>> parse_ratelimit('"api";r=12;t=55') is None
    True
    """
    if not value:
        return None
    match = _RATELIMIT_RE.search(value)
    if match is None or int(match.group(1)) > 0:
        return None
    return float(match.group(2))


def wait_hint(headers: Mapping[str, str]) -> float | None:
    """Return how long a 429/503 answer asks the client to wait, if it says so."""
    hinted = parse_retry_after(headers.get("Retry-After"))
    if hinted is None:
        hinted = parse_ratelimit(headers.get("RateLimit"))
    return hinted


def rebase(url: str, base_url: str) -> str:
    """Keep only the path and query of ``url`` and put them under ``base_url``.

    Next-page links are absolute; following them as given would let a response
    send the crawler to another host, and would break mirrors and local replay.

    >>> rebase("https://api.replicate.com/v1/models?cursor=abc", "http://127.0.0.1:9/r")
    'http://127.0.0.1:9/r/v1/models?cursor=abc'
    """
    parts = urlsplit(url)
    base = urlsplit(base_url.rstrip("/"))
    path = parts.path
    if base.path and not path.startswith(base.path + "/"):
        path = base.path + path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


def relative_ref(url: str, base_url: str) -> str:
    """Return ``url`` as a path+query relative to ``base_url`` (a saved cursor).

    >>> relative_ref("https://h.co/api/models?cursor=x", "https://h.co")
    '/api/models?cursor=x'
    """
    parts = urlsplit(rebase(url, base_url))
    base_path = urlsplit(base_url.rstrip("/")).path
    path = parts.path[len(base_path) :] if base_path else parts.path
    return path + (f"?{parts.query}" if parts.query else "")


def raise_for_status(host: str, response: requests.Response, *, token_env: str) -> None:
    """Map an HTTP status to the one exception this project raises for it.

    Args:
        host: host name for the message (``"civitai"``).
        response: the answer to check.
        token_env: env var that holds this host's token, named in auth errors.

    Raises:
        AuthRequired: 401, or 403 without a token problem the host explains.
        RateLimited: 429.
        HostUnavailable: 5xx.
        UnexpectedResponse: any other status outside 2xx (404 and 410 included:
            callers read ``.status`` to mark a listing gone).
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    url = response.url
    if status == 401:
        raise AuthRequired(
            host,
            url,
            f"HTTP 401: the host refused the request; set a valid {token_env}",
        )
    if status == 429:
        raise RateLimited(host, url, wait_hint(response.headers))
    if status >= 500:
        raise HostUnavailable(
            host, url, f"HTTP {status} after retries; try again later"
        )
    excerpt = response.headers.get("Location") or response.text
    raise UnexpectedResponse(host, url, status, excerpt)


class HttpClient:
    """A requests session for one host: timeouts, retries, rate limit, UA, token.

    Args:
        host: host name used in errors and logs.
        token: bearer token, or None for anonymous requests.
        token_env: the env var the token comes from, named in auth errors.
        rate: at most this many requests per second (None: no limit).
        retries: retries after the first attempt.
        backoff: first backoff sleep in seconds (doubled per retry, jittered).
        timeout: (connect, read) timeouts in seconds.
        session: a session to use (tests pass their own; default: a new one).
        clock: monotonic clock in seconds.
        sleep: function that waits (default time.sleep); tests pass a fake.
        rng: random source for jitter.
    """

    def __init__(
        self,
        host: str,
        *,
        token: str | None = None,
        token_env: str = "",
        rate: float | None = None,
        retries: int = MAX_RETRIES,
        backoff: float = BACKOFF_BASE,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.host = host
        self.token_env = token_env
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.min_interval = 1.0 / rate if rate else 0.0
        self.requests = 0  # every request sent, retries included
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._token = token
        self._clock = clock
        self._sleep = sleep or time.sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._next_slot = 0.0

    @property
    def has_token(self) -> bool:
        """Whether requests carry a token."""
        return bool(self._token)

    def redact(self, text: str) -> str:
        """Remove this client's token from ``text``."""
        return redact(text, (self._token or "",))

    def throttle(self) -> None:
        """Wait for this host's next request slot and count one request.

        Also called before each huggingface_hub call, so one ``--rate`` budget
        covers the requests that library makes for us.
        """
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.min_interval
            self.requests += 1
        if slot > now:
            self._sleep(slot - now)

    def get(
        self, url: str, *, params: Mapping[str, Any] | None = None, redirects: int = 0
    ) -> requests.Response:
        """GET ``url`` with retries; return a 2xx response or raise a HostError.

        Up to ``redirects`` redirects are followed when they stay on the same
        scheme and host; any other 3xx comes back as UnexpectedResponse with the
        ``Location`` as excerpt, so a renamed repository is visible as such.
        """
        attempt = 0
        while True:
            response = self._send(url, params, attempt)
            if response is None:  # connection error, retried
                delay: float | None = self._retry_delay(attempt, None)
            elif response.is_redirect and redirects > 0:
                url, params, redirects = self._same_host(response), None, redirects - 1
                continue
            elif response.status_code not in RETRY_STATUSES:
                raise_for_status(self.host, response, token_env=self.token_env)
                return response
            else:
                delay = self._retry_delay(attempt, wait_hint(response.headers))
                if attempt >= self.retries or delay is None:
                    raise_for_status(self.host, response, token_env=self.token_env)
                logger.info(
                    "%s: HTTP %d from %s; retrying in %.1fs",
                    self.host,
                    response.status_code,
                    response.url,
                    delay,
                )
            self._sleep(delay or 0.0)
            attempt += 1

    def _same_host(self, response: requests.Response) -> str:
        """Return the redirect target if it stays on the same origin, else raise."""
        target = urljoin(response.url, response.headers.get("Location", ""))
        here, there = urlsplit(response.url), urlsplit(target)
        if (here.scheme, here.netloc) != (there.scheme, there.netloc):
            raise UnexpectedResponse(
                self.host,
                response.url,
                response.status_code,
                f"redirect to another host refused: {target}",
            )
        return target

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        decode_retries: int = 1,
    ) -> JsonResponse:
        """GET ``url`` and decode its JSON body.

        A body that does not decode (a truncated answer) is fetched again up to
        ``decode_retries`` times, then raises UnexpectedResponse.
        """
        for attempt in range(decode_retries + 1):
            response = self.get(url, params=params)
            try:
                data = response.json()
            except (ValueError, json.JSONDecodeError) as exc:
                if attempt < decode_retries:
                    logger.info(
                        "%s: undecodable JSON from %s; refetching", self.host, url
                    )
                    continue
                raise UnexpectedResponse(
                    self.host,
                    response.url,
                    response.status_code,
                    f"body is not valid JSON ({exc}): {response.text[:80]!r}",
                ) from None
            next_link = response.links.get("next", {}).get("url")
            return JsonResponse(
                response.url, response.status_code, data, response.headers, next_link
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def get_text(self, url: str) -> str:
        """GET ``url`` and return its body as text."""
        return self.get(url).text

    def _send(
        self, url: str, params: Mapping[str, Any] | None, attempt: int
    ) -> requests.Response | None:
        """Send one request; None on a connection error that may be retried."""
        self.throttle()
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            return self.session.get(
                url,
                params=params,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            message = self.redact(f"{type(exc).__name__}: {exc}")
            if attempt >= self.retries:
                raise HostUnavailable(
                    self.host,
                    url,
                    f"unreachable after {attempt + 1} attempts ({message[:200]}); "
                    "check the network or the base URL",
                ) from None
            logger.info("%s: %s on %s; retrying", self.host, message[:200], url)
            return None

    def _retry_delay(self, attempt: int, hinted: float | None) -> float | None:
        """Seconds before the next attempt; None when the host asks for too long."""
        if hinted is not None:
            return None if hinted > MAX_WAIT else hinted
        ceiling = min(BACKOFF_MAX, self.backoff * (2**attempt))
        return ceiling / 2 + self._rng.random() * ceiling / 2  # jitter in [c/2, c]


def join_url(base_url: str, path: str) -> str:
    """Join an API path onto a base URL that may itself have a path.

    >>> join_url("http://127.0.0.1:9/civitai", "/api/v1/models")
    'http://127.0.0.1:9/civitai/api/v1/models'
    """
    return urljoin(base_url.rstrip("/") + "/", path.lstrip("/"))
