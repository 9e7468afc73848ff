"""Pure helpers every host's ``parse_*`` functions share: the item loop and readers.

A host's ``parse_page`` hands its page's items and its own ``parse_model`` to
:func:`parse_items`, the one loop turning a page into listings, in which a
malformed item becomes an :class:`ItemError` (recorded, and the crawl goes on)
instead of stopping its page. The tolerant readers (:func:`as_mapping`,
:func:`parse_time`, :func:`listed_items`), the cursor key of a filtered listing
(:func:`filter_key`), a typed :func:`replace` and the clock (:func:`utcnow`)
sit beside it. No I/O here.

Example:
    >>> from modelscan.registry.huggingface import parse_model
    >>> out = list(parse_items([{"id": "org/name"}, {}], parse_model, "page 1 entry"))
    >>> out[0].host_id, out[1].item
    ('org/name', 'page 1 entry 1')
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from modelscan.errors import UnexpectedResponse
from modelscan.records import Listing
from modelscan.registry.http import JsonResponse


@dataclass(frozen=True, slots=True)
class ItemError:
    """One entry of a page that could not be parsed; recorded, and the crawl goes on."""

    item: str
    message: str


def parse_items(
    items: Iterable[Any],
    parse: Callable[[Any], Listing | Iterable[Listing]],
    label: str | Callable[[int, Any], str],
) -> Iterator[Listing | ItemError]:
    """Parse each item of a page; a malformed one becomes an ItemError, not a stop.

    Args:
        items: the page's items (decoded JSON).
        parse: a host's parser of one item: a Listing, or several (Civitai gives
            one per model version); raises UnexpectedResponse for a bad item.
        label: names a bad item in its ItemError: ``f"{label} {index}"``, or
            ``label(index, item)`` when it is a function.

    Yields:
        The listings of every good item in page order, and one ItemError per bad
        item (an item gives all its listings or none).
    """
    for index, item in enumerate(items):
        try:
            parsed = parse(item)
            listings = (parsed,) if isinstance(parsed, Listing) else tuple(parsed)
        except UnexpectedResponse as exc:
            name = label(index, item) if callable(label) else f"{label} {index}"
            yield ItemError(name, str(exc))
            continue
        yield from listings


def filter_key(filters: Mapping[str, str]) -> str:
    """The cursor key of a listing narrowed by ``filters`` ("default" when none).

    Each set of filters resumes from its own cursor; a long key is replaced by a
    digest so it fits the index's key column.

    >>> filter_key({}), filter_key({"author": "openai"})
    ('default', 'author=openai')
    """
    if not filters:
        return "default"
    key = urlencode(sorted(filters.items()))
    return (
        key if len(key) <= 96 else "filters-" + hashlib.sha1(key.encode()).hexdigest()
    )


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one (tolerant parsing)."""
    return value if isinstance(value, Mapping) else {}


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp from a host as an aware datetime; None if absent or bad.

    A time without a zone is UTC: Civitai omits it on ``publishedAt``, and the
    index refuses naive datetimes.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def listed_items(host: str, answer: JsonResponse, key: str) -> list[Any]:
    """The list under ``key`` of a list-page answer; UnexpectedResponse otherwise."""
    data = answer.data
    if not isinstance(data, Mapping) or not isinstance(data.get(key), list):
        raise UnexpectedResponse(
            host,
            answer.url,
            answer.status,
            f"expected {{'{key}': [...]}}: {str(data)[:80]}",
        )
    items: list[Any] = data[key]
    return items


def utcnow() -> datetime:
    """Timezone-aware now, UTC."""
    return datetime.now(UTC)


def replace(listing: Listing, **changes: Any) -> Listing:
    """Return ``listing`` with fields changed (dataclasses.replace, typed)."""
    return dataclasses.replace(listing, **changes)
