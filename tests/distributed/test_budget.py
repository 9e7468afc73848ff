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
    for _ in range(5):
        wait, ticket = shared.reserve(API)
        assert (wait, ticket is not None) == (0.0, True)
        shared.answered(API, str(ticket))
    wait, ticket = shared.reserve(API)
    assert ticket is None
    assert 0.9 < wait <= 1.0


def test_a_slot_counts_until_its_answer_then_a_whole_window(
    client: redis.Redis,
) -> None:
    """A request still on its way holds its slot; answered, it ages from then."""
    shared = budget(client, "hf_a", Limit(1, 0.3))
    _, ticket = shared.reserve(API)
    time.sleep(0.4)  # longer than the window: unanswered, it still counts
    wait, none = shared.reserve(API)
    assert none is None
    assert 0 < wait <= 0.25  # asked again soon: when it comes back is not known
    shared.answered(API, str(ticket))
    wait, none = shared.reserve(API)
    assert 0.2 < wait <= 0.3  # a window from the answer, not from the slot
    time.sleep(wait + 0.02)
    assert shared.reserve(API)[1] is not None


def test_two_holders_of_one_token_share_one_window(client: redis.Redis) -> None:
    """Two workers' budgets on the same token and prefix count together."""
    first = budget(client, "hf_a", Limit(4, 1.0))
    second = RedisBudget(client, "huggingface", "hf_a", {"api": Limit(4, 1.0)},
                         prefix=first._base.split(":budget:")[0])  # fmt: skip
    taken = [b.reserve(API) for b in (first, second, first, second)]
    assert [wait for wait, _ in taken] == [0.0] * 4
    assert second.reserve(API)[0] > 0
    other = budget(client, "hf_b", Limit(4, 1.0))  # another token: its own window
    assert other.reserve(API)[0] == 0.0


def test_a_pause_holds_every_holder_back(client: redis.Redis) -> None:
    """A host's Retry-After, told to one holder, makes the others wait too."""
    first = budget(client, None, Limit(100, 1.0))
    second = RedisBudget(client, "huggingface", None, {"api": Limit(100, 1.0)},
                         prefix=first._base.split(":budget:")[0])  # fmt: skip
    first.pause(API, 0.5)
    assert 0.3 < second.reserve(API)[0] <= 0.5
    time.sleep(0.55)
    assert second.reserve(API)[0] == 0.0


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
