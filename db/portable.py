r"""Values both SQLite and PostgreSQL accept: IN lists in chunks, text without NUL.

Every load with an ``IN (...)`` list sends its ids through :func:`chunks`
(SQLite caps the variables of one statement); every text a host or a file
supplies goes through :func:`clean_text` (PostgreSQL text cannot hold NUL).

Example:
    >>> [list(part) for part in chunks([1, 2, 3], 2)]
    [[1, 2], [3]]
    >>> clean_text("a\x00b") == "a\ufffdb"
    True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

CHUNK = 500  # ids per IN (...) list: well under SQLite's variable limit
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Yield ``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def clean_text(value: str) -> str:
    """Replace NUL characters, which PostgreSQL text cannot hold."""
    return value.replace("\x00", "\ufffd")
