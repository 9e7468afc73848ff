"""Portable values: IN lists cut under SQLite's variable limit, text without NUL."""

from __future__ import annotations

from modelscan.db.portable import CHUNK, chunks, clean_text


def test_chunks_cover_every_item_once_in_order() -> None:
    """Slices of at most the size, in order, nothing lost; none for no items."""
    items = list(range(2 * CHUNK + 1))
    parts = list(chunks(items))
    assert [len(p) for p in parts] == [CHUNK, CHUNK, 1]
    assert [x for p in parts for x in p] == items
    assert list(chunks([], 3)) == []
    assert [list(p) for p in chunks("abcde", 2)] == [["a", "b"], ["c", "d"], ["e"]]


def test_clean_text_replaces_only_nul() -> None:
    """NUL, which PostgreSQL text refuses, becomes U+FFFD; other text is kept."""
    assert clean_text("a\x00b\x00") == "a\ufffdb\ufffd"
    assert clean_text("tab\tand ünïcode") == "tab\tand ünïcode"
