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
from typing import Any, NoReturn, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3

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


class Budget(Protocol):
    """A request budget shared beyond this process (all workers on one token).

    :mod:`modelscan.distributed.budget` keeps one in Redis; the client takes a
    slot before every request, tells it when the answer came back (the slot
    counts until then, so a request held up on its way still counts when it
    arrives), and tells it when the host asked everyone to wait.
    """

    def reserve(self, url: str) -> tuple[float, str | None]:
        """Take a slot for ``url``: ``(0.0, ticket)``, else ``(wait, None)``."""

    def answered(self, url: str, ticket: str) -> None:
        """The request of ``ticket`` has its answer: its slot now ages normally."""

    def pause(self, url: str, seconds: float) -> None:
        """Hold back every holder of the budget of ``url`` for ``seconds``."""


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
        AuthRequired: 401 or 403, with the host's ``X-Error-Code`` (the Hub says
            ``GatedRepo`` for a gated file: 401 anonymous, 403 not granted).
        RateLimited: 429.
        HostUnavailable: 5xx.
        UnexpectedResponse: any other status outside 2xx (404 and 410 included:
            callers read ``.status`` to mark a listing gone).
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    url = response.url
    if status in (401, 403):
        code = response.headers.get("X-Error-Code")
        raise AuthRequired(
            host, url, _auth_message(status, code, token_env),
            status=status, error_code=code,
        )  # fmt: skip
    if status == 429:
        raise RateLimited(host, url, wait_hint(response.headers))
    if status >= 500:
        raise HostUnavailable(
            host, url, f"HTTP {status} after retries; try again later"
        )
    excerpt = response.headers.get("Location") or response.text
    raise UnexpectedResponse(host, url, status, excerpt)


def _auth_message(status: int, code: str | None, token_env: str) -> str:
    """What a 401/403 means and what to do about it, in one line."""
    if code == "GatedRepo":
        if status == 401:
            return f"HTTP 401: gated file; accept its terms and set {token_env}"
        return f"HTTP 403: gated file; the {token_env} account was not granted access"
    if status == 401:
        return f"HTTP 401: the host refused the request; set a valid {token_env}"
    return f"HTTP 403: the host refused the request; check {token_env}'s permissions"


def _is_json(data: bytes) -> bool:
    """Whether ``data`` decodes as JSON (an answer cut short does not)."""
    try:
        json.loads(data)
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError alike
        return False
    return True


# What a broken connection raises out of requests or urllib3: refused or reset,
# reset mid-body (ChunkedEncodingError wraps urllib3's ProtocolError and
# IncompleteRead), a body that does not decompress, a read timeout. All transient.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,
)


class HttpClient:
    """A requests session for one host: timeouts, retries, rate limit, UA, token.

    Every request of a host goes through :meth:`send`, ours and those
    huggingface_hub makes for us (see :mod:`modelscan.registry.hub_transport`), so
    one failure policy holds for all of them: connection errors, resets mid-body,
    read timeouts, 408/429/5xx and JSON bodies that do not decode are retried with
    exponential backoff and jitter (``Retry-After`` and ``RateLimit`` obeyed);
    after ``retries`` the last failure is raised as a
    :class:`~modelscan.errors.HostError`, never as a requests/urllib3 exception.

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
        budget: a request budget shared with other processes (distributed crawl).
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
        budget: Budget | None = None,
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
        self.retried = 0  # attempts that failed and were tried again
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._token = token
        self._clock = clock
        self._sleep = sleep or time.sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self.budget = budget

    @property
    def has_token(self) -> bool:
        """Whether requests carry a token."""
        return bool(self._token)

    @property
    def token(self) -> str | None:
        """The token requests carry (to hand to a reader of this host's files)."""
        return self._token

    def redact(self, text: str) -> str:
        """Remove this client's token from ``text``."""
        return redact(text, (self._token or "",))

    def throttle(self, url: str = "") -> str | None:
        """Wait for this host's next request slot and count one request.

        ``--rate`` paces this process; a shared :class:`Budget`, when given, then
        paces every process on the same token: the ticket returned is handed back
        with :meth:`answered` once the request has its answer.
        """
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.min_interval
            self.requests += 1
        if slot > now:
            self._sleep(slot - now)
        while self.budget is not None:
            wait, ticket = self.budget.reserve(url)
            if ticket is not None:
                return ticket
            self._sleep(wait)
        return None

    def answered(self, url: str, ticket: str | None) -> None:
        """Tell the shared budget that the request of ``ticket`` was answered."""
        if ticket is not None and self.budget is not None:
            self.budget.answered(url, ticket)

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        expect_json: bool | None = False,
    ) -> requests.Response:
        """Send one request under the failure policy; return the final answer.

        Redirects are not followed. Any status that is not retried comes back as
        it is (callers map it with :func:`raise_for_status`).

        Args:
            method: HTTP method.
            url: absolute URL.
            params: query parameters.
            headers: extra headers (an ``Authorization`` given here wins).
            content: request body.
            expect_json: True: a 2xx body must decode as JSON; None: so must one
                whose Content-Type says JSON; False: any body.

        Raises:
            HostUnavailable: still unreachable, broken or 5xx after the retries.
            RateLimited: still 429 after the retries, or asked to wait too long.
            UnexpectedResponse: a 2xx JSON body still undecodable after retries.
        """
        attempt = 0
        while True:
            answer = self._send_once(method, url, params, headers, content)
            if isinstance(answer, str):
                failure, hinted = answer, None
            elif answer.status_code in RETRY_STATUSES:
                failure = f"HTTP {answer.status_code}"
                hinted = wait_hint(answer.headers)
            elif _json_broken(answer, expect_json):
                failure, hinted = "a body that is not valid JSON", None
            else:
                return answer
            delay = self._retry_delay(attempt, hinted)
            if hinted and self.budget is not None:  # the host spoke to every worker
                self.budget.pause(url, min(hinted, MAX_WAIT))
            if attempt >= self.retries or delay is None:
                self._give_up(url, answer, failure, attempt)
            logger.info("%s: %s from %s; retrying in %.1fs", self.host,
                        failure, self.redact(url), delay)  # fmt: skip
            self._sleep(delay or 0.0)
            attempt += 1
            with self._lock:
                self.retried += 1

    def get(
        self, url: str, *, params: Mapping[str, Any] | None = None, redirects: int = 0
    ) -> requests.Response:
        """GET ``url`` with retries; return a 2xx response or raise a HostError.

        Up to ``redirects`` redirects are followed when they stay on the same
        scheme and host; any other 3xx comes back as UnexpectedResponse with the
        ``Location`` as excerpt, so a renamed repository is visible as such.
        """
        return self._get(url, params, redirects, expect_json=False)

    def _get(
        self,
        url: str,
        params: Mapping[str, Any] | None,
        redirects: int,
        *,
        expect_json: bool,
    ) -> requests.Response:
        while True:
            response = self.send("GET", url, params=params, expect_json=expect_json)
            if not (response.is_redirect and redirects > 0):
                raise_for_status(self.host, response, token_env=self.token_env)
                return response
            url, params, redirects = self._same_host(response), None, redirects - 1

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
        redirects: int = 0,
    ) -> JsonResponse:
        """GET ``url`` and decode its JSON body (one cut short is fetched again)."""
        response = self._get(url, params, redirects, expect_json=True)
        next_link = response.links.get("next", {}).get("url")
        return JsonResponse(
            response.url, response.status_code, response.json(), response.headers,
            next_link,
        )  # fmt: skip

    def get_text(self, url: str) -> str:
        """GET ``url`` and return its body as text."""
        return self.get(url).text

    def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        content: bytes | None,
    ) -> requests.Response | str:
        """Send one request and read its body; a transport failure comes back as text.

        The body is read here (not streamed), so a connection reset in the middle
        of it is a failure of this attempt, retried like any other.
        """
        ticket = self.throttle(url)
        sent = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        sent.update(headers or {})
        try:
            return self.session.request(
                method, url, params=params, headers=sent, data=content,
                timeout=self.timeout, allow_redirects=False,
            )  # fmt: skip
        except TRANSPORT_ERRORS as exc:
            return self.redact(f"{type(exc).__name__}: {exc}")[:200]
        finally:
            self.answered(url, ticket)

    def _give_up(
        self, url: str, answer: requests.Response | str, failure: str, attempt: int
    ) -> NoReturn:
        """Raise the HostError that the last failed attempt stands for."""
        url = self.redact(url)
        if isinstance(answer, str):
            raise HostUnavailable(
                self.host, url,
                f"unreachable after {attempt + 1} attempts ({answer}); "
                "check the network or the base URL",
            )  # fmt: skip
        if answer.status_code in RETRY_STATUSES:
            raise_for_status(self.host, answer, token_env=self.token_env)
        raise UnexpectedResponse(
            self.host, url, answer.status_code,
            f"{failure} after {attempt + 1} attempts: {answer.text[:80]!r}",
        )  # fmt: skip

    def _retry_delay(self, attempt: int, hinted: float | None) -> float | None:
        """Seconds before the next attempt; None when the host asks for too long."""
        if hinted is not None:
            return None if hinted > MAX_WAIT else hinted
        ceiling = min(BACKOFF_MAX, self.backoff * (2**attempt))
        return ceiling / 2 + self._rng.random() * ceiling / 2  # jitter in [c/2, c]


def _json_broken(response: requests.Response, expect_json: bool | None) -> bool:
    """Whether a 2xx answer that should be JSON does not decode."""
    if expect_json is False or not 200 <= response.status_code < 300:
        return False
    if expect_json is None:
        kind = response.headers.get("Content-Type", "")
        if "json" not in kind.lower() or not response.content:
            return False
    return not _is_json(response.content)


def join_url(base_url: str, path: str) -> str:
    """Join an API path onto a base URL that may itself have a path.

    >>> join_url("http://127.0.0.1:9/civitai", "/api/v1/models")
    'http://127.0.0.1:9/civitai/api/v1/models'
    """
    return urljoin(base_url.rstrip("/") + "/", path.lstrip("/"))


def strip_api_path(base_url: str, api_path: str) -> str:
    """Drop the API's own path from a base URL given with it; keep any other path.

    The hosts document their API bases with the version path
    (``https://civitai.com/api/v1``, ``https://api.replicate.com/v1``) and the host
    classes add that path themselves; a mirror's own prefix stays as given.

    >>> strip_api_path("https://civitai.com/api/v1/", "/api/v1")
    'https://civitai.com'
    >>> strip_api_path("http://127.0.0.1:9/civitai", "/api/v1")
    'http://127.0.0.1:9/civitai'
    """
    base_url = base_url.rstrip("/")
    return base_url.removesuffix(api_path) if base_url.endswith(api_path) else base_url
