"""Spread measures over plain copies: takedown cost, survival, growth."""

from __future__ import annotations

from datetime import timedelta

from memory_index import DAY, T0
from world import build

from modelscan.lineage.infer import link
from modelscan.lineage.rows import CopyRow
from modelscan.lineage.spread import JSON_KEYS, Spread, spread
from modelscan.lineage.subjects import Subject


def copy(
    repo: int, host: str, owner: str, day: int, gone: int | None = None
) -> CopyRow:
    """A hosted copy first seen on ``day``."""
    return CopyRow(
        repo_id=repo, host=host, host_id=f"{owner}/m", owner=owner, downloads=10,
        sha256="a", path="m.safetensors", first_seen=T0 + day * DAY,
        gone_at=T0 + gone * DAY if gone is not None else None,
    )  # fmt: skip


def test_takedown_cost_counts_accounts_with_a_live_copy() -> None:
    """Two live copies of one account cost one takedown; a gone copy costs none."""
    s = Spread(
        Subject("x", "hash", "x"),
        (
            copy(1, "huggingface", "a", 0),
            copy(2, "huggingface", "a", 1),
            copy(3, "civitai", "b", 2),
            copy(4, "civitai", "c", 3, gone=4),
        ),  # fmt: skip
        {},
        False,
    )
    data = s.to_json()
    assert tuple(data) == JSON_KEYS
    assert (data["takedown_cost"], data["owners"], data["hosts"]) == (2, 3, 2)
    assert data["survival"] == {"gone": 1, "survived": 1, "rate": 1.0}
    assert data["downloads"] == 40


def test_survival_needs_another_live_copy_at_that_moment() -> None:
    """A copy that went gone before any other appeared did not survive."""
    s = Spread(
        Subject("x", "hash", "x"),
        (copy(1, "huggingface", "a", 0, gone=2), copy(2, "civitai", "b", 5)),
        {},
        False,
    )
    assert s.survival() == {"gone": 1, "survived": 0, "rate": 0.0}


def test_added_per_30_days_windows_from_the_first_copy() -> None:
    """Copies are counted in 30-day windows from the first sighting, gaps as 0."""
    s = Spread(
        Subject("x", "hash", "x"),
        (copy(1, "huggingface", "a", 0), copy(2, "civitai", "b", 65)),
        {},
        False,
    )
    assert [w["added"] for w in s.added_per_30_days()] == [1, 0, 1]
    assert s.first_seen_per_host()["civitai"] == T0 + timedelta(days=65)


def test_spread_of_the_base_over_the_memory_index() -> None:
    """The base's copies, its conversion, and its derivatives by relation."""
    index, repo = build()
    link(index, clock=lambda: T0)
    from modelscan.lineage.subjects import resolve_subject

    data = spread(index, resolve_subject(index, "hf:org/base")).to_json()
    assert (data["exact_copies"], data["content_copies"]) == (3, 1)
    assert data["takedown_cost"] == 3  # org, mirror, conv: bob's copy went gone
    assert data["derivatives"] == {"adapter": 1, "finetune": 2}
