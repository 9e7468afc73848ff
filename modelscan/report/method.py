"""The report's method section: what each number counts, as README defines it.

One entry per ``spread --json`` key the page shows, in README's words (section
"modelscan spread SUBJECT"), so a reader of a printed page knows what was
counted without the tool at hand.

Example:
    >>> "takedown_cost" in dict(MEASURES)
    True
"""

from __future__ import annotations

from html import escape

MEASURES: tuple[tuple[str, str], ...] = (
    ("exact_copies", "hosted occurrences of the subject's own bytes (same sha256)"),
    (
        "content_copies",
        "hosted occurrences of the same weights in other bytes (same content_id "
        "or weights_id: another container, other metadata, renamed tensors)",
    ),
    (
        "live_copies",
        "of those (with --descendants, also every descendant's model files), "
        "the ones not gone from their host",
    ),
    (
        "hosts, owners",
        "distinct hosts, and distinct (host, owner) accounts, that ever held a copy",
    ),
    (
        "jurisdictions, operators",
        "the countries, and the companies running the hosts, that hold a live "
        "copy (each host has an operator and a country; README says how to "
        "override them)",
    ),
    (
        "downloads",
        "summed over the distinct repos holding a copy, as each host counts them "
        "(Hugging Face: last 30 days; all time where the host gives it)",
    ),
    (
        "takedown_cost",
        "distinct (host, owner) accounts holding a live copy: the notices a "
        "takedown needs",
    ),
    (
        "survival",
        "of the copies that went gone, how many had a live copy in another repo "
        "at that moment",
    ),
    (
        "derivatives",
        "child repos by relation (copies and conversions are counted above); "
        "all descendants with --descendants",
    ),
    (
        "growth",
        "each copy counts from the date its host published it (the commit that "
        "added the file, the version's publication), else from when the crawler "
        "first saw it; the caption says how many rest on each",
    ),
    (
        "lineage",
        "edges declared by a host card or a file (declared-card, declared-file) "
        "and inferred from the bytes (identical-hash, same-content, same-weights, "
        "weight-similarity with its median correlation as confidence)",
    ),
    (
        "contradictions",
        "declared parents the weights disagree with (lineage --check): the "
        "weights point at another parent, or a declared fine-tune does not "
        "correlate with its declared base",
    ),
)
SCOPE = (
    "All numbers count hosted occurrences (files on a host, live or gone) "
    "that the index holds; your own files (host local) are not counted. A "
    "copy no crawl has reached is not counted: the numbers are a floor."
)


def section_html() -> str:
    """Return the method section of the page."""
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in MEASURES)
    return (
        '<section id="method"><h2>Method</h2>'
        f'<p>{escape(SCOPE)}</p><dl class="method">{items}</dl></section>'
    )
