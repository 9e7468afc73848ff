"""Read a report page back with the standard library's HTML parser.

The tests check what a browser would build from the page: the elements and
attributes (no script, no event handler, no link but http(s)), the text, and
the headline numbers marked ``data-measure``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any


@dataclass
class Page:
    """What the parser found."""

    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    measures: dict[str, Any] = field(default_factory=dict)

    def attrs(self, name: str) -> list[str]:
        """Every value of attribute ``name`` on any element."""
        return [a[name] for _, a in self.tags if name in a]

    def count(self, tag: str) -> int:
        """How many ``tag`` elements the page has."""
        return sum(1 for t, _ in self.tags if t == tag)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.page.tags.append((tag, found))
        if "data-measure" in found:
            self.page.measures[found["data-measure"]] = json.loads(found["data-value"])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.page.text.append(data)


def scan(html: str) -> Page:
    """Parse a page."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.page


def expected_measures(spread_json: dict[str, Any]) -> dict[str, Any]:
    """The ``data-measure`` values a page must show for a ``spread --json``."""
    out = {
        k: spread_json[k]
        for k in (
            "exact_copies",
            "content_copies",
            "live_copies",
            "hosts",
            "owners",
            "downloads",
            "takedown_cost",
            "survival",
        )
    }
    for key in ("downloads_all_time", "downloads_last_30_days"):
        if spread_json.get(key) is not None:
            out[key] = spread_json[key]
    for key in ("jurisdictions", "operators"):
        if spread_json.get(key) is not None:
            out[key] = len(spread_json[key])
    for relation, n in spread_json["derivatives"].items():
        out[f"derivatives.{relation}"] = n
    if not spread_json["derivatives"]:
        out["derivatives"] = {}
    return out


def unsafe(page: Page) -> list[str]:
    """Anything on the page that could run or fetch: scripts, handlers, links."""
    bad = [t for t, _ in page.tags if t in ("script", "iframe", "object", "embed")]
    for tag, attrs in page.tags:
        bad += [f"{tag}@{k}" for k in attrs if k.startswith("on")]
        for key in ("href", "xlink:href", "src"):
            value = attrs.get(key)
            if value is None or value.startswith(("https://", "http://", "#")):
                continue
            if not (tag == "link" and value == "data:,"):  # the empty favicon
                bad.append(f"{tag}@{key}={value}")
    return bad
