"""Hugging Face: pure parsing of recorded records, crawls through huggingface_hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeStore
from huggingface_hub.hf_api import RepoFile
from replay import DATA, ReplayServer

from modelscan.records import LineageRef
from modelscan.registry.base import crawl
from modelscan.registry.http import HttpClient
from modelscan.registry.huggingface import (
    HuggingFaceHost,
    parse_adapter_config,
    parse_lineage,
    parse_model,
    parse_status,
    parse_tree,
)

MODELS = DATA / "huggingface" / "api" / "models"
TREE = r"/huggingface/api/models/.*/tree/"


def record(name: str) -> dict[str, Any]:
    return json.loads((MODELS / f"{name}.json").read_text())


def host(server: ReplayServer, sleeps: list[float], **kw: str) -> HuggingFaceHost:
    client = HttpClient("huggingface", token_env="HF_TOKEN", sleep=sleeps.append)
    return HuggingFaceHost(client, server.base("huggingface"), **kw)


# --- pure ----------------------------------------------------------------------------


def test_parse_model_maps_a_recorded_record() -> None:
    """Every field of a Listing comes from the recorded model_info record."""
    raw = record("HuggingFaceH4/zephyr-7b-beta")
    listing = parse_model(raw, base_url="https://hf.example")
    assert listing.host_id == raw["id"]
    assert listing.owner == raw["author"]
    assert listing.revision == raw["sha"]
    assert listing.updated_at is not None
    assert listing.updated_at.isoformat().startswith(raw["lastModified"][:19])
    assert (listing.downloads, listing.likes) == (raw["downloads"], raw["likes"])
    assert listing.kind == raw["pipeline_tag"]
    assert listing.license == raw["cardData"]["license"]
    assert listing.url == f"https://hf.example/{raw['id']}"
    assert listing.status == "live"


def test_card_and_tags_give_one_parent_each_with_relation() -> None:
    """base_model from the card keeps its source; the tag supplies the relation."""
    zephyr = record("HuggingFaceH4/zephyr-7b-beta")
    assert parse_model(zephyr).lineage == (
        LineageRef("hf:mistralai/Mistral-7B-v0.1", "finetune", "declared-card"),
    )
    roberta = record("deepset/roberta-base-squad2")  # base_model as a list
    assert isinstance(roberta["cardData"]["base_model"], list)
    assert [r.parent for r in parse_model(roberta).lineage] == [
        "hf:FacebookAI/roberta-base"
    ]
    llama = parse_model(record("meta-llama/Llama-3.1-8B-Instruct")).lineage
    assert (
        LineageRef("hf:meta-llama/Meta-Llama-3.1-8B", "unknown", "declared-card")
        in llama
    )
    assert LineageRef("hf:meta-llama/Llama-3.1-8B", "finetune", "declared-tag") in llama


def test_lineage_relation_from_card_wins_and_tag_only_parents_are_kept() -> None:
    """base_model_relation names the relation; a parent only in tags is declared-tag."""
    refs = parse_lineage(
        {"base_model": ["a/b", "c/d"], "base_model_relation": "merge"},
        ["base_model:quantized:e/f", "base_model:g/h", "license:mit"],
    )
    assert refs == (
        LineageRef("hf:a/b", "merge", "declared-card"),
        LineageRef("hf:c/d", "merge", "declared-card"),
        LineageRef("hf:e/f", "quantized", "declared-tag"),
        LineageRef("hf:g/h", "unknown", "declared-tag"),
    )
    assert parse_lineage(None, []) == ()
    assert parse_lineage({"base_model": 5}, ["base_model:"]) == ()


def test_status_from_gated_disabled_private() -> None:
    """Disabled is a takedown; private and gated are recorded as such."""
    assert parse_status(record("meta-llama/Llama-3.1-8B-Instruct")) == "gated"
    assert parse_status({"disabled": True, "gated": "auto"}) == "taken_down"
    assert parse_status({"private": True}) == "private"
    assert parse_status({"gated": False}) == "live"


def test_parse_tree_takes_lfs_sha256_from_the_recorded_tree() -> None:
    """LFS files get the Hub's sha256 and size; small files keep their git oid only."""
    path = (
        MODELS / "bert-base-uncased/tree/dd4bc8b21efa05ec961e3efc4ee5e3832a3679c7.json"
    )
    raw = json.loads(path.read_text())
    files = parse_tree([RepoFile(**e) for e in raw], base_url="https://h",
                       repo_id="bert-base-uncased", revision="dd4bc8b")  # fmt: skip
    by_path = {f.path: f for f in files}
    assert set(by_path) == {e["path"] for e in raw}
    for entry in raw:
        got = by_path[entry["path"]]
        assert got.sha256 == (entry["lfs"]["oid"] if "lfs" in entry else None)
        assert got.size == entry["size"]
        assert got.extra["git_oid"] == entry["oid"]
    assert (
        by_path["vocab.txt"].url
        == "https://h/bert-base-uncased/resolve/dd4bc8b/vocab.txt"
    )


def test_tree_dates_each_file_by_its_last_commit() -> None:
    """published_at is each file's lastCommit date in the recorded expand=True tree."""
    path = (
        MODELS / "bert-base-uncased/tree/dd4bc8b21efa05ec961e3efc4ee5e3832a3679c7.json"
    )
    raw = json.loads(path.read_text())
    files = parse_tree([RepoFile(**e) for e in raw], base_url="https://h",
                       repo_id="bert-base-uncased", revision="dd4bc8b")  # fmt: skip
    dates = {f.path: f.published_at for f in files}
    for entry in raw:
        got = dates[entry["path"]]
        assert got is not None
        assert got.tzinfo is not None
        assert got.isoformat()[:19] == entry["lastCommit"]["date"][:19]
    assert str(dates["pytorch_model.bin"])[:10] == "2019-06-18"
    assert str(dates["tf_model.h5"])[:10] == "2019-09-23"


def test_parse_model_keeps_created_at_and_all_time_downloads() -> None:
    """The repo's createdAt is its date; downloadsAllTime sits beside downloads."""
    raw = record("HuggingFaceH4/zephyr-7b-beta")
    listing = parse_model({**raw, "downloadsAllTime": 12_345_678}, base_url="https://h")
    assert listing.published_at is not None
    assert listing.published_at.isoformat()[:19] == raw["createdAt"][:19]
    assert listing.downloads == raw["downloads"]  # the Hub's last 30 days
    assert listing.downloads_all_time == 12_345_678
    assert parse_model(raw, base_url="https://h").downloads_all_time is None
    bad = parse_model({**raw, "downloadsAllTime": "lots"}, base_url="https://h")
    assert bad.downloads_all_time is None


def test_parse_adapter_config() -> None:
    """A PEFT config names its base; a local path stays free text; junk names none."""
    assert parse_adapter_config({"base_model_name_or_path": "a/b"}) == LineageRef(
        "hf:a/b", "adapter", "declared-file"
    )
    assert parse_adapter_config({"base_model_name_or_path": "/data/llama"}).parent == (  # type: ignore[union-attr]
        "/data/llama"
    )
    assert parse_adapter_config([1, 2]) is None
    assert parse_adapter_config({"base_model_name_or_path": ""}) is None


def test_malformed_entry_is_an_item_error(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """An entry without id does not stop its page: it becomes one ItemError."""
    from modelscan.registry.base import Page
    from modelscan.registry.parsing import ItemError

    out = list(
        host(server, sleeps).parse_page(Page([{"sha": "x"}, {"id": "a/b"}], None))
    )
    assert isinstance(out[0], ItemError) and "without 'id'" in out[0].message  # noqa: PT018
    assert out[1].host_id == "a/b"  # type: ignore[union-attr]


# --- against the replay server ------------------------------------------------------


def test_full_crawl_stores_every_repo_with_its_tree(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """A first crawl lists all repos, fetches each tree once and each adapter config."""
    records = server.hf_records()
    stats = crawl(host(server, sleeps), store)
    assert store.ids("huggingface") == set(records)
    assert stats.complete
    assert stats.errors == 0
    assert server.count(r"/huggingface/api/models\?") == 1  # one list page
    expected_trees = sum(-(-len(server.hf_tree_entries(r, expand=True)) // 50)
                         for r in records.values() if r.get("sha"))  # fmt: skip
    assert server.count(TREE) == expected_trees
    assert stats.requests == server.count("")
    eicar = store.files[("huggingface", "mcpotato/42-eicar-street")]
    sibling = next(s for s in records["mcpotato/42-eicar-street"]["siblings"]
                   if s["rfilename"] == "pytorch_model.bin")  # fmt: skip
    assert eicar["pytorch_model.bin"].sha256 == sibling["lfs"]["sha256"]
    assert eicar["pytorch_model.bin"].extra["security"]["status"] == "safe"
    assert eicar["danger.dat"].sha256 is None
    lora = store.repos[("huggingface", "modelscan-tests/zephyr-7b-lora")]["lineage"]
    assert (
        LineageRef("hf:HuggingFaceH4/zephyr-7b-beta", "adapter", "declared-file")
        in lora
    )
    assert server.count("adapter_config.json") == 1


def test_list_request_asks_sorted_by_last_modification_with_needed_fields(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """The list request sorts by lastModified and expands sha, cardData and tags."""
    crawl(host(server, sleeps), store, max_pages=1)
    listing = next(r for r in server.requests if r.path == "/api/models")
    params = listing.params
    assert ("sort", "lastModified") in params
    assert {"sha", "cardData", "tags", "gated"} <= {
        v for k, v in params if k == "expand"
    }


def test_unchanged_repos_cost_no_tree_request_on_recrawl(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """A recrawl with no new commits makes list requests only."""
    crawl(host(server, sleeps), store)
    server.reset()
    stats = crawl(host(server, sleeps), store)
    assert server.count(TREE) == 0
    assert stats.requests == 1
    assert stats.unchanged == len(server.hf_records())


def test_recrawl_records_changed_appeared_gone_renamed_taken_down(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """The second visit's changes become the matching events; unchanged repos cost 0."""
    crawl(host(server, sleeps), store)
    old_zephyr = store.repos[("huggingface", "HuggingFaceH4/zephyr-7b-beta")][
        "revision"
    ]
    server.visit = 1
    server.reset()
    store.events.clear()
    crawl(host(server, sleeps), store)
    events = {(e[0], e[1]) for e in store.events}
    assert ("HuggingFaceH4/zephyr-7b-beta", "changed") in events
    assert ("google-bert/bert-base-uncased", "appeared") in events
    assert ("deepset/roberta-base-squad2", "gone") in events
    assert ("bert-base-uncased", "renamed") in events
    assert ("meta-llama/Llama-3.1-8B-Instruct", "taken_down") in events
    trees = {r.path.split("/tree/")[0] for r in server.requests if "/tree/" in r.path}
    assert trees == {"/api/models/HuggingFaceH4/zephyr-7b-beta",
                     "/api/models/google-bert/bert-base-uncased"}  # fmt: skip
    zephyr = store.repos[("huggingface", "HuggingFaceH4/zephyr-7b-beta")]
    assert zephyr["revision"] != old_zephyr
    files = store.files[("huggingface", "HuggingFaceH4/zephyr-7b-beta")]
    assert "zephyr-7b-beta.Q4_K_M.gguf" in files


def test_pages_follow_the_link_header_and_resume_from_the_saved_cursor(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """Small pages: the rebased next link is the cursor; runs continue without gaps."""
    hf = host(server, sleeps)
    crawl(hf, store, limit=3)
    cursor = store.load_cursor("huggingface")
    assert cursor is not None and cursor.startswith("/api/models?")  # noqa: PT018
    assert "127.0.0.1" not in cursor  # path and query only
    assert len(store.ids("huggingface")) == 3
    crawl(hf, store, limit=3)
    assert len(store.ids("huggingface")) == 6
    crawl(hf, store)
    assert store.ids("huggingface") == set(server.hf_records())
    lists = [r for r in server.requests if r.path == "/api/models"]
    assert [dict(r.params)["limit"] for r in lists[:2]] == ["3", "3"]
    assert dict(lists[-1].params)["limit"] == "1000"


def test_filters_narrow_the_listing_and_keep_their_own_cursor(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """--author lists only that owner's repos under a cursor key of its own."""
    hf = host(server, sleeps, author="HuggingFaceH4")
    crawl(hf, store)
    assert store.ids("huggingface") == {
        i for i in server.hf_records() if i.startswith("HuggingFaceH4/")
    }
    assert ("huggingface", "author=HuggingFaceH4") in store.cursors
    assert ("huggingface", "default") not in store.cursors


def test_truncated_list_page_is_refetched(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """A list answer cut mid-way is asked again; the crawl ends complete."""
    server.fail(r"/huggingface/api/models\?", truncate=True)
    stats = crawl(host(server, sleeps), store)
    assert stats.complete
    assert stats.errors == 0
    assert server.count(r"/huggingface/api/models\?") == 2


def test_tree_that_never_decodes_is_one_error_and_the_crawl_goes_on(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """A repo whose tree is always truncated is an error row; the others are saved."""
    server.fail(r"mcpotato/42-eicar-street/tree/", truncate=True, times=None)
    stats = crawl(host(server, sleeps), store)
    assert stats.status == "ok"
    assert stats.errors == 1
    assert store.errors[0][2] == "mcpotato/42-eicar-street"
    assert store.ids("huggingface") == set(server.hf_records()) - {
        "mcpotato/42-eicar-street"
    }


def test_hf_endpoint_and_token_come_from_the_environment(
    server: ReplayServer, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HF_ENDPOINT points both our client and huggingface_hub; HF_TOKEN goes to both."""
    monkeypatch.setenv("HF_ENDPOINT", server.base("huggingface"))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    hf = HuggingFaceHost.from_env(author="mcpotato")
    assert hf.base_url == server.base("huggingface")
    crawl(hf, store)
    assert store.ids("huggingface") == {"mcpotato/42-eicar-street"}
    assert {r.headers.get("authorization") for r in server.requests} == {
        "Bearer hf_test_token"
    }
    assert all(
        r.headers["user-agent"].startswith("modelscan/") for r in server.requests
    )
    assert HuggingFaceHost.from_env(endpoint="http://mirror.example/").base_url == (
        "http://mirror.example"
    )


def test_data_files_are_small() -> None:
    """Recorded data stays trimmed (< 50 KB a file)."""
    sizes = {p: p.stat().st_size for p in Path(DATA).rglob("*") if p.is_file()}
    assert max(sizes.values()) < 50_000
