"""Civitai: recorded models parsed purely, cursor crawls against the replay server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeStore
from replay import DATA, ReplayServer

from modelscan.errors import HostUnavailable
from modelscan.records import LineageRef, crc32_from_civitai
from modelscan.registry.base import Page, crawl
from modelscan.registry.civitai import (
    CivitaiHost,
    parse_hashes,
    parse_model,
    parse_next_cursor,
)
from modelscan.registry.http import HttpClient
from modelscan.registry.parsing import ItemError

PAGES = DATA / "civitai" / "api" / "v1"
LIST = r"/civitai/api/v1/models\?"


def page(name: str) -> dict[str, Any]:
    return json.loads((PAGES / name).read_text())


def host(server: ReplayServer, sleeps: list[float], **kw: str) -> CivitaiHost:
    client = HttpClient("civitai", token_env="CIVITAI_API_TOKEN", sleep=sleeps.append)
    return CivitaiHost(client, server.base("civitai"), **kw)


def all_items() -> list[dict[str, Any]]:
    return page("models.json")["items"] + page(
        "models,cursor=22138|364671|25494.json")["items"]  # fmt: skip


# --- pure ----------------------------------------------------------------------------


def test_every_version_becomes_a_listing_with_its_files_newest_first() -> None:
    """One listing per version, the model's id as host_id, the version's as revision."""
    item = page("models.json")["items"][1]
    listings = parse_model(item, base_url="https://civitai.example")
    versions = sorted(item["modelVersions"], key=lambda v: -v["id"])
    assert [x.revision for x in listings] == [str(v["id"]) for v in versions]
    assert {x.host_id for x in listings} == {str(item["id"])}
    for listing, version in zip(listings, versions, strict=True):
        assert [f.path for f in listing.files] == [
            f"{version['id']}/{f['id']}/{f['name']}" for f in version["files"]
        ]
        assert listing.owner == item["creator"]["username"]
        assert listing.downloads == item["stats"]["downloadCount"]
        assert listing.kind == item["type"] == "Checkpoint"
        assert listing.url == f"https://civitai.example/models/{item['id']}"


def test_files_are_dated_by_their_versions_publication() -> None:
    """A file's published_at is its version's publishedAt; the model's is the first."""
    item = page("models_visit1.json")["items"][0]
    listings = parse_model(item)
    for listing in listings:
        version = next(
            v for v in item["modelVersions"] if str(v["id"]) == listing.revision
        )
        stated = version.get("publishedAt") or version["createdAt"]
        for f in listing.files:
            assert f.published_at is not None
            assert f.published_at.isoformat()[:19] == stated[:19]
        assert listing.downloads_all_time == item["stats"]["downloadCount"]
    first = min(v.get("publishedAt") or v["createdAt"] for v in item["modelVersions"])
    assert {x.published_at.isoformat()[:19] for x in listings if x.published_at} == {
        first[:19]
    }


def test_hashes_are_stored_under_our_names_with_crc32_converted() -> None:
    """SHA256 lower-cased; AutoV1/V2/V3 and BLAKE3 lower; CRC32 back to zlib order."""
    for item in all_items():
        for listing in parse_model(item):
            files = {f.extra["id"]: f for f in listing.files}
            version = next(
                v for v in item["modelVersions"] if str(v["id"]) == listing.revision
            )
            for raw in version["files"]:
                got, theirs = files[raw["id"]], raw["hashes"]
                assert got.sha256 == theirs["SHA256"].lower()
                assert (
                    got.hashes["crc32"] == f"{crc32_from_civitai(theirs['CRC32']):08x}"
                )
                for name in ("AutoV1", "AutoV2", "AutoV3", "BLAKE3"):
                    assert got.hashes.get(name.lower()) == (
                        theirs[name].lower() if theirs.get(name) else None
                    )
                assert got.size == round(raw["sizeKB"] * 1024)
                assert got.extra["pickleScanResult"] == raw["pickleScanResult"]
                assert got.extra["virusScanResult"] == raw["virusScanResult"]
                assert got.extra["base_model"] == version["baseModel"]


def test_crc32_example_from_the_design() -> None:
    """Civitai's 85114A0D is zlib's 0x0D4A1185 (the bytes of "hello world")."""
    import zlib

    assert (
        parse_hashes({"CRC32": "85114A0D"})[1]["crc32"]
        == f"{zlib.crc32(b'hello world'):08x}"
    )
    assert parse_hashes({"CRC32": "XYZ"}) == (None, {})


def test_base_model_and_type_give_declared_lineage() -> None:
    """A LORA declares an adapter of its base models; a merge checkpoint a merge."""
    lora = page("models,cursor=22138|364671|25494.json")["items"][0]
    assert parse_model(lora)[0].lineage == (
        LineageRef("Illustrious", "adapter", "declared-card"),
    )
    merged = dict(page("models.json")["items"][0], checkpointType="Merge")
    assert {r.relation for r in parse_model(merged)[0].lineage} == {"merge"}


def test_mode_becomes_status() -> None:
    """Mode TakenDown and Archived are recorded as such."""
    item = page("models.json")["items"][0]
    assert parse_model(dict(item, mode="TakenDown"))[0].status == "taken_down"
    assert parse_model(dict(item, mode="Archived"))[0].status == "archived"
    assert parse_model(item)[0].status == "live"


def test_next_cursor_and_empty_last_page() -> None:
    """metadata.nextCursor is the cursor; a page without one is the last."""
    assert parse_next_cursor(page("models.json")) == "22138|364671|25494"
    assert parse_next_cursor(page("models,cursor=1102|0|1102.json")) is None


def test_malformed_model_is_an_item_error(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """A model without modelVersions is one ItemError; its page goes on."""
    good = page("models.json")["items"][0]
    out = list(
        host(server, sleeps).parse_page(Page({"items": [{"id": 5}, good]}, None))
    )
    assert isinstance(out[0], ItemError)
    assert "'modelVersions'" in out[0].message
    assert out[1].host_id == str(good["id"])  # type: ignore[union-attr]


# --- against the replay server ------------------------------------------------------


def test_crawl_follows_cursors_to_the_empty_last_page(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """Three requests (two pages and an empty last one) store every model and file."""
    stats = crawl(host(server, sleeps), store)
    assert store.ids("civitai") == {str(i["id"]) for i in all_items()}
    assert stats.complete
    assert stats.pages == 3
    assert server.count(LIST) == 3
    cursors = [dict(r.params).get("cursor") for r in server.requests]
    assert cursors == [None, "22138|364671|25494", "1102|0|1102"]
    assert all(dict(r.params)["sort"] == "Newest" for r in server.requests)
    assert stats.files == sum(
        len(v["files"]) for i in all_items() for v in i["modelVersions"]
    )


def test_429_on_a_page_waits_and_the_crawl_completes(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """A 429 with Retry-After on page two costs one wait of that length."""
    server.fail(r"cursor=22138", 429, headers={"Retry-After": "3"})
    stats = crawl(host(server, sleeps), store)
    assert stats.complete
    assert sleeps == [3.0]
    assert server.count(LIST) == 4


def test_host_down_mid_crawl_keeps_page_one_and_resumes_at_page_two(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """503 forever on page two: the run fails, page one stays, a rerun starts there."""
    server.fail(r"cursor=22138", 503, times=None)
    with pytest.raises(HostUnavailable):
        crawl(host(server, sleeps), store)
    assert store.ids("civitai") == {str(i["id"]) for i in page("models.json")["items"]}
    assert store.load_cursor("civitai") == "22138|364671|25494"
    server.reset()
    crawl(host(server, sleeps), store)
    assert [dict(r.params).get("cursor") for r in server.requests] == [
        "22138|364671|25494",
        "1102|0|1102",
    ]
    assert store.ids("civitai") == {str(i["id"]) for i in all_items()}


def test_recrawl_records_takedown_archive_new_version_and_gone(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """Second visit: TakenDown, Archived, a new version and a vanished model (404)."""
    crawl(host(server, sleeps), store)
    server.visit = 1
    store.events.clear()
    crawl(host(server, sleeps), store)
    events = {(e[0], e[1]) for e in store.events}
    first = page("models.json")["items"]
    assert (str(first[0]["id"]), "taken_down") in events
    assert (str(first[2]["id"]), "archived") in events
    assert (str(first[1]["id"]), "changed") in events
    assert store.repos[("civitai", str(first[1]["id"]))]["revision"] == "999001"
    assert ("1102", "gone") in events
    assert server.count(r"/civitai/api/v1/models/1102") == 1  # the sweep's one check


def test_token_is_sent_as_bearer_when_set(
    server: ReplayServer, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CIVITAI_API_TOKEN goes in the Authorization header and nowhere else."""
    monkeypatch.setenv("CIVITAI_API_TOKEN", "civ-secret")
    monkeypatch.setenv("MODELSCAN_CIVITAI_URL", server.base("civitai"))
    stats = crawl(CivitaiHost.from_env(), store)
    assert {r.headers.get("authorization") for r in server.requests} == {
        "Bearer civ-secret"
    }
    assert all("civ-secret" not in r.query for r in server.requests)
    assert "civ-secret" not in json.dumps(stats.as_dict())


def test_author_filter_maps_to_username(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """--author is Civitai's username parameter, with its own cursor key."""
    crawl(host(server, sleeps, author="Merjic"), store, max_pages=1)
    assert dict(server.requests[0].params)["username"] == "Merjic"
    assert ("civitai", "username=Merjic") in store.cursors


def test_limit_counts_models_not_versions(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """--limit 2 stores two whole models, every version of each."""
    stats = crawl(host(server, sleeps), store, limit=2)
    assert stats.listings == 2
    assert len(store.ids("civitai")) == 2
    assert dict(server.requests[0].params)["limit"] == "2"
