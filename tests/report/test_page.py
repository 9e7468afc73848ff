"""The page from hand-made data: measures old and new, hostile copies, no graph."""

from __future__ import annotations

from datetime import UTC, datetime

from htmlscan import expected_measures, scan, unsafe

from modelscan.report.data import Report, copy_rows, safe_url
from modelscan.report.page import render_report

OLD_MEASURES = {  # Spread.to_json() before published dates and jurisdictions
    "exact_copies": 2,
    "live_copies": 1,
    "content_copies": 0,
    "derivatives": {},
    "hosts": 1,
    "owners": 2,
    "downloads": 12345,
    "first_seen_per_host": {"huggingface": "2025-01-01T00:00:00+00:00"},
    "added_per_30_days": [{"start": "2025-01-01T00:00:00+00:00", "added": 2}],
    "takedown_cost": 1,
    "survival": {"gone": 1, "survived": 1, "rate": 1.0},
}
NEW_KEYS = {
    "downloads_all_time": 99999,
    "downloads_last_30_days": 12345,
    "first_published_per_host": {"huggingface": "2023-05-01T00:00:00+00:00"},
    "growth_dated_by": {"published_at": 1, "first_seen": 1},
    "jurisdictions": {"US": 1},
    "operators": {"Hugging Face, Inc.": 1},
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _copy(owner: str, path: str, url: str, **dates: str | None) -> dict[str, object]:
    row: dict[str, object] = {
        "kind": "exact", "host": "huggingface", "owner": owner, "repo": f"hf:{owner}/m",
        "path": path, "sha256": "ab" * 32, "status": "live", "first_seen": None,
        "published_at": None, "gone_at": None, "url": url,
    }  # fmt: skip
    row.update(dates)
    return row


def _report(measures: dict[str, object]) -> Report:
    copies = [
        _copy("org", "model.safetensors", "https://huggingface.co/org/m",
              first_seen="2025-01-01T00:00:00+00:00",
              published_at="2023-05-01T00:00:00+00:00"),
        _copy("<i>x</i>", "<img src=x onerror=alert(1)>", "javascript:alert(1)",
              first_seen="2025-01-02T00:00:00+00:00", status="gone",
              gone_at="2025-02-01T00:00:00+00:00"),
    ]  # fmt: skip
    for row in copies:
        row["url"] = safe_url(str(row["url"]))
    return Report("hf:org/m", dict(measures), copies, None)


def test_old_and_new_measures_render() -> None:
    """The page shows the measures present, before and after the new keys."""
    for measures in (OLD_MEASURES, {**OLD_MEASURES, **NEW_KEYS}):
        page = scan(render_report(_report(measures), now=NOW))
        assert page.measures == expected_measures(measures)
        assert unsafe(page) == []


def test_growth_caption_counts_each_date_source() -> None:
    """The caption says how many copies rest on published dates and first sightings."""
    text = "".join(scan(render_report(_report(OLD_MEASURES), now=NOW)).text)
    assert "1 copies dated by their host's published date, 1 by when" in text


def test_copy_rows_from_spread_copies() -> None:
    """Rows come from Spread.copies_json; a hostile listed URL gives the site's form."""
    from modelscan.lineage.rows import CopyRow
    from modelscan.lineage.spread import Spread
    from modelscan.lineage.subjects import Subject

    at = datetime(2025, 3, 1, tzinfo=UTC)
    row = CopyRow(repo_id=7, host="civitai", host_id="42", owner="bob", downloads=3,
                  sha256="cd" * 32, path="a.safetensors", first_seen=at,
                  gone_at=None, url="javascript:alert(1)")  # fmt: skip
    spread = Spread(Subject("x", "hash", "x"), (row,), {}, False)
    [made] = copy_rows(spread)
    assert made["repo"] == "civitai:42"
    assert made["url"] == "https://civitai.com/models/42"  # the site's form instead
    assert made["status"] == "live"
    assert made["first_seen"] == at.isoformat()
