"""huggingface_hub's requests go through our HttpClient: one policy, one count."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError
from replay import ReplayServer

from modelscan.errors import HostUnavailable, RateLimited
from modelscan.registry.http import HttpClient
from modelscan.registry.hub_transport import bound

TREE = r"/huggingface/api/models/HuggingFaceH4/zephyr-7b-beta/tree/"
REPO = "HuggingFaceH4/zephyr-7b-beta"


def tree(server: ReplayServer, client: HttpClient) -> list[object]:
    api = HfApi(endpoint=server.base("huggingface"), token=False)
    with bound(client, server.base("huggingface")):
        return list(api.list_repo_tree(REPO, recursive=True, expand=True))


def test_hub_calls_are_counted_and_paced_by_our_client(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """Every tree page huggingface_hub fetches is one request of our client."""
    client = HttpClient("huggingface", sleep=sleeps.append)
    entries = tree(server, client)
    assert entries
    assert client.requests == server.count(TREE) >= 1


def test_hub_503_and_resets_are_retried_with_our_sleep(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """A 503 with Retry-After, then a reset: our backoff and sleep, not hub's."""
    server.fail(TREE, 503, headers={"Retry-After": "3"})
    server.fail(TREE, reset=True)
    client = HttpClient("huggingface", sleep=sleeps.append)
    assert tree(server, client)
    assert sleeps[0] == 3.0
    assert len(sleeps) == 2
    assert server.count(TREE) == 3


def test_a_truncated_tree_page_is_fetched_again(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """JSON cut short in a complete answer is fetched again before hub decodes it."""
    server.fail(TREE, truncate=True)
    client = HttpClient("huggingface", sleep=sleeps.append)
    assert tree(server, client)
    assert server.count(TREE) == 2


def test_failures_that_persist_raise_our_errors_through_huggingface_hub(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """After the retries a HostError comes out of the hub call, not an httpx error."""
    server.fail(TREE, reset=True, times=None)
    client = HttpClient("huggingface", retries=2, sleep=sleeps.append)
    with pytest.raises(HostUnavailable, match="unreachable after 3 attempts"):
        tree(server, client)
    server.reset()
    server.fail(TREE, 429, headers={"Retry-After": "3600"}, times=None)
    with pytest.raises(RateLimited, match="retry after 3600s"):
        tree(server, client)


def test_unbound_threads_and_other_origins_keep_huggingface_hubs_transport(
    server: ReplayServer,
) -> None:
    """Outside ``bound``, or for another origin, huggingface_hub works as usual."""
    api = HfApi(endpoint=server.base("huggingface"), token=False)
    client = HttpClient("huggingface")
    with bound(client, server.base("civitai")):  # a binding for another origin
        entries = list(api.list_repo_tree(REPO, recursive=True))
    assert client.requests == 0
    assert entries
    server.fail(TREE, 404, headers={"X-Error-Code": "RepoNotFound"})
    with pytest.raises(RepositoryNotFoundError):
        list(api.list_repo_tree(REPO, recursive=True))
