"""The shared request budget on the real Redis: a sliding window and a pause."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from modelscan.distributed.budget import Limit, RedisBudget, bucket_of, token_id

API = "http://hub.test/api/models"
RESOLVE = "http://hub.test/org/m/resolve/main/config.json"


@pytest.fixture
def client() -> redis.Redis:
    return redis.Redis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)


def budget(client: redis.Redis, token: str | None, limit: Limit) -> RedisBudget:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    return RedisBudget(client, "huggingface", token, {"api": limit}, prefix=prefix)


def test_n_slots_then_a_wait_until_the_oldest_leaves_the_window(
    client: redis.Redis,
) -> None:
    """5 per second: five slots at once, the sixth waits about a second."""
    shared = budget(client, "hf_a", Limit(5, 1.0))
    assert [shared.reserve(API) for _ in range(5)] == [0.0] * 5
    wait = shared.reserve(API)
    assert 0.9 < wait <= 1.2


def test_two_holders_of_one_token_share_one_window(client: redis.Redis) -> None:
    """Two workers' budgets on the same token and prefix count together."""
    first = budget(client, "hf_a", Limit(4, 1.0))
    second = RedisBudget(client, "huggingface", "hf_a", {"api": Limit(4, 1.0)},
                         prefix=first._base.split(":budget:")[0])  # fmt: skip
    taken = [b.reserve(API) for b in (first, second, first, second)]
    assert taken == [0.0] * 4
    assert second.reserve(API) > 0
    other = budget(client, "hf_b", Limit(4, 1.0))  # another token: its own window
    assert other.reserve(API) == 0.0


def test_a_pause_holds_every_holder_back(client: redis.Redis) -> None:
    """A host's Retry-After, told to one holder, makes the others wait too."""
    first = budget(client, None, Limit(100, 1.0))
    second = RedisBudget(client, "huggingface", None, {"api": Limit(100, 1.0)},
                         prefix=first._base.split(":budget:")[0])  # fmt: skip
    first.pause(API, 0.5)
    assert 0.3 < second.reserve(API) <= 0.5
    time.sleep(0.55)
    assert second.reserve(API) == 0.0


def test_buckets_and_names() -> None:
    """The Hub's resolver is its own bucket; keys carry a digest, not the token."""
    assert (bucket_of("huggingface", RESOLVE), bucket_of("huggingface", API)) == (
        "resolve",
        "api",
    )
    assert bucket_of("civitai", RESOLVE) == "api"
    assert token_id(None) == "anonymous"
    assert "hf_secret" not in token_id("hf_secret")
    assert Limit.parse("1000/300") == Limit(1000, 300.0)
    with pytest.raises(ValueError, match="N/SECONDS"):
        Limit.parse("0/5")
