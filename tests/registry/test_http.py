"""The shared HTTP client against the replay server: retries, waits, headers, errors."""

from __future__ import annotations

import logging
import socket

import pytest
from replay import ReplayServer

from modelscan import __version__
from modelscan.errors import (
    AuthRequired,
    HostUnavailable,
    RateLimited,
    UnexpectedResponse,
)
from modelscan.registry.http import (
    MAX_RETRIES,
    USER_AGENT,
    HttpClient,
    parse_ratelimit,
    parse_retry_after,
    rebase,
    relative_ref,
)

PAGE = "/civitai/api/v1/models"


def client(sleeps: list[float], **kwargs: object) -> HttpClient:
    return HttpClient("civitai", token_env="CIVITAI_API_TOKEN", sleep=sleeps.append,
                      **kwargs)  # type: ignore[arg-type]  # fmt: skip


def test_429_waits_exactly_what_retry_after_says(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """A 429 with Retry-After: 7 makes the client wait 7 s once, then succeed."""
    server.fail(PAGE, 429, headers={"Retry-After": "7"})
    answer = client(sleeps).get_json(server.url + PAGE)
    assert isinstance(answer.data["items"], list)
    assert sleeps == [7.0]
    assert server.count(PAGE) == 2


def test_429_with_hugging_face_ratelimit_header_waits_for_the_reset(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """Hugging Face's RateLimit header (r=0;t=55) sets the wait when no Retry-After."""
    server.fail(PAGE, 429, headers={"RateLimit": '"api";r=0;t=55'})
    client(sleeps).get_json(server.url + PAGE)
    assert sleeps == [55.0]


def test_500_then_success_backs_off_with_jitter(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """One 500 costs one retry after a jittered backoff of half to one base delay."""
    server.fail(PAGE, 500)
    client(sleeps, backoff=2.0).get_json(server.url + PAGE)
    assert len(sleeps) == 1
    assert 1.0 <= sleeps[0] <= 2.0
    assert server.count(PAGE) == 2


def test_host_that_stays_down_raises_after_bounded_retries(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """503 forever: HostUnavailable after 1 + MAX_RETRIES attempts, growing waits."""
    server.fail(PAGE, 503, times=None)
    with pytest.raises(HostUnavailable, match="HTTP 503"):
        client(sleeps).get_json(server.url + PAGE)
    assert server.count(PAGE) == MAX_RETRIES + 1
    assert len(sleeps) == MAX_RETRIES
    assert sleeps[-1] > sleeps[0]


def test_retry_after_longer_than_the_cap_stops_instead_of_sleeping(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """A 429 asking for an hour raises RateLimited at once with the wait in it."""
    server.fail(PAGE, 429, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimited, match="retry after 3600s") as info:
        client(sleeps).get_json(server.url + PAGE)
    assert info.value.retry_after == 3600.0
    assert sleeps == []


def test_unreachable_host_is_host_unavailable_naming_the_url(
    sleeps: list[float],
) -> None:
    """Connection refused is retried, then reported with the URL to check."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    with pytest.raises(HostUnavailable, match="unreachable") as info:
        client(sleeps, retries=2).get(url)
    assert info.value.url == url
    assert len(sleeps) == 2


def test_truncated_json_is_fetched_again_once(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """A body cut mid-way is refetched; the second, whole answer is used."""
    server.fail(PAGE, truncate=True)
    answer = client(sleeps).get_json(server.url + PAGE)
    assert answer.data["metadata"]["nextCursor"]
    assert server.count(PAGE) == 2


def test_always_truncated_json_is_an_unexpected_response(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """A body that never decodes raises UnexpectedResponse saying it is not JSON."""
    server.fail(PAGE, truncate=True, times=None)
    with pytest.raises(UnexpectedResponse, match="not valid JSON"):
        client(sleeps).get_json(server.url + PAGE)


def test_user_agent_names_tool_and_version_and_token_goes_as_bearer(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """Every request carries our User-Agent, and the token only as a Bearer header."""
    client(sleeps, token="tok-123").get_json(server.url + PAGE, params={"limit": 1})
    client(sleeps).get_json(server.url + PAGE)
    with_token, without = server.requests
    assert with_token.headers["user-agent"] == USER_AGENT
    assert f"modelscan/{__version__}" in USER_AGENT
    assert with_token.headers["authorization"] == "Bearer tok-123"
    assert "tok-123" not in with_token.query
    assert "authorization" not in without.headers


def test_token_never_appears_in_errors_or_logs(
    server: ReplayServer, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """A refused token gives AuthRequired naming the env var, not the token."""
    secret = "r8_secret-token-value"
    caplog.set_level(logging.DEBUG)
    server.fail(PAGE, 500)
    server.fail(PAGE, 401)
    with pytest.raises(AuthRequired, match="CIVITAI_API_TOKEN") as info:
        client(sleeps, token=secret).get_json(server.url + PAGE)
    assert secret not in str(info.value)
    assert secret not in caplog.text
    assert "500" in caplog.text  # the retry was logged, without the token


def test_rate_spaces_requests_with_the_injected_clock(sleeps: list[float]) -> None:
    """--rate 2 makes three back-to-back requests wait 0.5 s each after the first."""
    now = [100.0]
    http = HttpClient("x", rate=2.0, sleep=sleeps.append, clock=lambda: now[0])
    for _ in range(3):
        http.throttle()
    assert sleeps == [0.5, 1.0]
    assert http.requests == 3


def test_redirects_followed_on_the_same_host_only(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """A same-host redirect is followed when asked; one to another host is refused."""
    server.visit = 1
    url = server.url + "/huggingface/api/models/bert-base-uncased"
    http = HttpClient("huggingface", sleep=sleeps.append)
    with pytest.raises(UnexpectedResponse) as info:
        http.get(url)
    assert info.value.status == 307
    assert "google-bert/bert-base-uncased" in info.value.excerpt
    moved = http.get(url, redirects=1)
    assert moved.json()["id"] == "google-bert/bert-base-uncased"
    server.fail(
        "bert-base-uncased", 302, headers={"Location": "https://evil.example/x"}
    )
    with pytest.raises(UnexpectedResponse, match="another host refused"):
        http.get(url, redirects=3)


def test_rebase_keeps_only_path_and_query() -> None:
    """Next links are put under the configured base: another host is never followed."""
    base = "http://127.0.0.1:9/replicate"
    nxt = "https://evil.example/v1/models?cursor=abc"
    assert rebase(nxt, base) == "http://127.0.0.1:9/replicate/v1/models?cursor=abc"
    assert relative_ref(nxt, base) == "/v1/models?cursor=abc"
    assert relative_ref(base + "/v1/models?cursor=x", base) == "/v1/models?cursor=x"


def test_header_parsers() -> None:
    """Retry-After as seconds or HTTP date, RateLimit only when nothing remains."""
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("tomorrow") is None
    assert parse_ratelimit('"api";r=0;t=55') == 55.0
    assert parse_ratelimit('"api";r=3;t=55') is None
    assert parse_ratelimit(None) is None


def test_a_reset_mid_body_is_retried_not_raised(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """Half a promised body, then a closed connection: one retry, then the answer."""
    server.fail(PAGE, reset=True, times=2)
    answer = client(sleeps).get_json(server.url + PAGE)
    assert isinstance(answer.data["items"], list)
    assert server.count(PAGE) == 3
    assert len(sleeps) == 2


def test_resets_that_never_stop_become_host_unavailable(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """Resets on every attempt end as HostUnavailable, not a requests exception."""
    server.fail(PAGE, reset=True, times=None)
    with pytest.raises(HostUnavailable, match="unreachable after 6 attempts"):
        client(sleeps).get_json(server.url + PAGE)
    assert server.count(PAGE) == 1 + MAX_RETRIES


@pytest.mark.parametrize(
    ("status", "headers", "words"),
    [
        (401, {"X-Error-Code": "GatedRepo"}, "gated file; accept its terms"),
        (403, {"X-Error-Code": "GatedRepo"}, "was not granted access"),
        (401, {}, "set a valid CIVITAI_API_TOKEN"),
        (403, {}, "check CIVITAI_API_TOKEN's permissions"),
    ],
)
def test_401_and_403_are_auth_errors_with_the_hosts_code(
    server: ReplayServer,
    sleeps: list[float],
    status: int,
    headers: dict[str, str],
    words: str,
) -> None:
    """401/403 are not retried; AuthRequired keeps the status and X-Error-Code."""
    server.fail(PAGE, status, headers=headers)
    with pytest.raises(AuthRequired, match=words) as caught:
        client(sleeps).get_json(server.url + PAGE)
    assert caught.value.status == status
    assert caught.value.gated is bool(headers)
    assert server.count(PAGE) == 1
    assert sleeps == []
