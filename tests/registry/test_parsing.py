"""The hosts' shared parsing: one item loop, cursor keys of filters, host times."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from modelscan.errors import UnexpectedResponse
from modelscan.records import Listing
from modelscan.registry import parsing
from modelscan.registry.http import JsonResponse
from modelscan.registry.parsing import ItemError, parse_items


def listing(host_id: str) -> Listing:
    return Listing(host="fake", host_id=host_id, name=host_id, owner=None,
                   url=f"fake://{host_id}", revision=None, updated_at=None)  # fmt: skip


def one(item: Any) -> Listing:
    if not isinstance(item, Mapping) or "id" not in item:
        raise UnexpectedResponse("fake", "fake://list", None, "entry without 'id'")
    return listing(item["id"])


def versions(item: Any) -> tuple[Listing, ...]:
    """Several listings per item, as Civitai gives one per model version."""
    if not isinstance(item.get("versions"), list):
        raise UnexpectedResponse("fake", "fake://list", None, "no versions")
    return tuple(listing(f"{item['id']}@{v}") for v in item["versions"])


def test_bad_items_become_item_errors_and_the_page_goes_on() -> None:
    """Each bad item is one ItemError named by the label and its index, in order."""
    out = list(parse_items([{"id": "a"}, [], {"id": "b"}, {}], one, "page 3 entry"))
    bad = "fake: unexpected response: entry without 'id' (fake://list)"
    assert [x.host_id if isinstance(x, Listing) else x for x in out] == [
        "a",
        ItemError("page 3 entry 1", bad),
        "b",
        ItemError("page 3 entry 3", bad),
    ]


def test_an_item_may_give_several_listings_or_none() -> None:
    """A parser returning many listings yields them all; a bad item yields none."""
    items = [{"id": 1, "versions": [2, 1]}, {"id": 2}, {"id": 3, "versions": []}]
    out = list(parse_items(items, versions, lambda i, item: f"model {item['id']}"))
    assert [x.host_id for x in out if isinstance(x, Listing)] == ["1@2", "1@1"]
    assert [x.item for x in out if isinstance(x, ItemError)] == ["model 2"]
    assert list(parse_items([], one, "entry")) == []


def test_other_errors_are_bugs_and_propagate() -> None:
    """Only UnexpectedResponse marks a bad item; anything else is not swallowed."""
    with pytest.raises(KeyError):
        list(parse_items([{"versions": [1]}], versions, "entry"))


def test_listed_items_and_as_mapping_read_tolerantly() -> None:
    """A list page's items are under its key; anything else is UnexpectedResponse."""

    def answer(data: Any) -> JsonResponse:
        return JsonResponse("https://h/list", 200, data, {}, None)

    assert parsing.listed_items("h", answer({"items": [1, 2]}), "items") == [1, 2]
    with pytest.raises(UnexpectedResponse, match=r"expected \{'items': \[\.\.\.\]\}"):
        parsing.listed_items("h", answer({"items": {}}), "items")
    assert parsing.as_mapping({"a": 1}) == {"a": 1}
    assert parsing.as_mapping([1]) == {} and parsing.as_mapping(None) == {}  # noqa: PT018


def test_filter_key_is_short_and_stable() -> None:
    """Each filter set gets its own cursor key, short enough for the index column."""
    assert parsing.filter_key({}) == "default"
    assert parsing.filter_key({"b": "2", "a": "1"}) == "a=1&b=2"
    long = parsing.filter_key({"search": "x" * 500})
    assert len(long) < 64
    assert long == parsing.filter_key({"search": "x" * 500})


def test_parse_time_gives_aware_utc_or_none() -> None:
    """Host timestamps become aware datetimes; a zone-less one is UTC; junk is None."""
    ten = datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parsing.parse_time("2024-05-01T10:00:00Z") == ten
    assert parsing.parse_time("2024-05-01T10:00:00") == ten
    later = parsing.parse_time("2024-05-01T12:00:00+02:00")
    assert later == datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert parsing.parse_time("yesterday") is None
    assert parsing.parse_time(None) is None
