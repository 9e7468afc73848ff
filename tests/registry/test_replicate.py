"""Replicate: token handling, recorded models parsed purely, crawls with versions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeStore
from replay import DATA, ReplayServer

from modelscan.errors import AuthRequired
from modelscan.records import LineageRef
from modelscan.refs import find_links
from modelscan.registry.base import crawl
from modelscan.registry.http import HttpClient
from modelscan.registry.replicate import (
    ReplicateHost,
    parse_lineage,
    parse_model,
    parse_versions,
)

V1 = DATA / "replicate" / "v1"
TOKEN = "r8_test-token-123"
LIST = r"/replicate/v1/models(\?|$)"


def load(name: str) -> dict[str, Any]:
    return json.loads((V1 / name).read_text())


def page_two() -> dict[str, Any]:
    return next(json.loads(p.read_text()) for p in V1.glob("models,cursor=*.json")
                if "_visit" not in p.name)  # fmt: skip


def host(server: ReplayServer, sleeps: list[float]) -> ReplicateHost:
    client = HttpClient("replicate", token=TOKEN, token_env="REPLICATE_API_TOKEN",
                        sleep=sleeps.append)  # fmt: skip
    return ReplicateHost(client, server.base("replicate"))


def all_ids() -> set[str]:
    items = load("models.json")["results"] + page_two()["results"]
    return {f"{i['owner']}/{i['name']}" for i in items}


# --- pure ----------------------------------------------------------------------------


def test_without_token_a_clear_message_names_the_variable() -> None:
    """No REPLICATE_API_TOKEN: AuthRequired saying what to set, before any request."""
    with pytest.raises(AuthRequired, match="REPLICATE_API_TOKEN"):
        ReplicateHost.from_env()


def test_parse_model_maps_a_recorded_model() -> None:
    """run_count is reach, the latest version id is the revision."""
    raw = load("models/stability-ai/sdxl.json")
    listing = parse_model(raw)
    assert listing.host_id == "stability-ai/sdxl"
    assert listing.downloads == raw["run_count"]
    assert listing.revision == raw["latest_version"]["id"]
    assert listing.url == raw["url"]
    empty = parse_model(load("models/mattt/empty.json"))
    assert empty.revision is None and empty.downloads == 0  # noqa: PT018


def test_a_model_is_dated_by_its_versions() -> None:
    """The list gives the latest version's created_at; details the first version's."""
    raw = load("models/stability-ai/sdxl.json")
    listing = parse_model(raw)
    assert listing.published_at is not None
    assert (
        listing.published_at.isoformat()[:19]
        == raw["latest_version"]["created_at"][:19]
    )
    assert parse_model(load("models/mattt/empty.json")).published_at is None


def test_links_to_hugging_face_become_unresolved_parents() -> None:
    """Links in paper/license URLs or README name HF repos; site pages do not."""
    item = next(i for i in page_two()["results"] if i["name"] == "llamaguard-7b")
    assert parse_lineage(item) == (
        LineageRef(
            "hf:llamas-community/LlamaGuard-7b", "unknown", "declared-description"
        ),
        LineageRef("hf:TheBloke/LlamaGuard-7B-AWQ", "unknown", "declared-description"),
    )
    assert find_links("https://huggingface.co/models?license=license:apache-2.0") == []
    assert find_links("see https://huggingface.co/spaces/CompVis/sd-license") == []
    text = "from https://civitai.com/models/4384/x and https://hf.co/gpt2/tree/main"
    assert find_links(text) == ["civitai:4384", "hf:gpt2"]  # in order of mention
    assert parse_lineage({}, "weights: https://huggingface.co/a/b.") == (
        LineageRef("hf:a/b", "unknown", "declared-description"),
    )


def test_links_to_replicate_itself_are_no_parents() -> None:
    """A README linking its own or another Replicate page declares no parent."""
    readme = (
        "Run it: https://replicate.com/stability-ai/sdxl/api, a Cog packaging of "
        "**https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0**"
    )
    assert parse_lineage({"description": "see https://replicate.com/a/b"}) == ()
    assert parse_lineage({}, readme) == (
        LineageRef(
            "hf:stabilityai/stable-diffusion-xl-base-1.0",
            "unknown",
            "declared-description",
        ),
    )


def test_parse_versions_reads_the_recorded_list() -> None:
    """Every version id of the recorded versions page is kept."""
    raw = load("models/stability-ai/sdxl/versions.json")
    assert [v["id"] for v in parse_versions(raw)] == [v["id"] for v in raw["results"]]


# --- against the replay server ------------------------------------------------------


def test_crawl_lists_models_and_fetches_versions_of_each(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """Two pages; versions and README asked once per model; token on every request."""
    stats = crawl(host(server, sleeps), store)
    ids = all_ids()
    assert store.ids("replicate") == ids
    assert stats.complete
    assert stats.errors == 0
    assert server.count(LIST) == 2
    assert server.count("/versions") == len(ids)
    assert server.count("/readme") == len(ids)
    assert {r.headers.get("authorization") for r in server.requests} == {
        f"Bearer {TOKEN}"
    }
    sdxl = store.repos[("replicate", "stability-ai/sdxl")]["listing"]
    recorded = load("models/stability-ai/sdxl/versions.json")["results"]
    assert [v["id"] for v in sdxl.extra["versions"]] == [v["id"] for v in recorded]
    guard = store.repos[("replicate", "tomasmcm/llamaguard-7b")]["lineage"]
    assert {r.parent for r in guard} == {"hf:llamas-community/LlamaGuard-7b",
                                         "hf:TheBloke/LlamaGuard-7B-AWQ"}  # fmt: skip


def test_next_link_to_another_host_is_rebased_onto_the_server(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """The recorded next URL (api.replicate.com) is followed on the configured base."""
    server.rewrite = False  # serve next as recorded: https://api.replicate.com/v1/...
    assert load("models.json")["next"].startswith("https://api.replicate.com/")
    crawl(host(server, sleeps), store)
    assert server.count(r"/replicate/v1/models\?cursor=") == 1
    assert store.ids("replicate") == all_ids()


def test_500_then_success_on_the_list(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """One 500 on the first page costs one backoff and one more request."""
    server.fail(r"/replicate/v1/models\?$", 500)
    stats = crawl(host(server, sleeps), store)
    assert stats.complete
    assert len(sleeps) == 1
    assert server.count(LIST) == 3


def test_versions_never_decoding_is_one_error(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """A truncated versions answer (twice) records an error for that model only."""
    server.fail("fofr/latent-consistency-model/versions", truncate=True, times=None)
    stats = crawl(host(server, sleeps), store)
    assert stats.errors == 1
    assert store.errors[0][2] == "fofr/latent-consistency-model"
    assert store.ids("replicate") == all_ids() - {"fofr/latent-consistency-model"}


def test_recrawl_fetches_versions_only_for_the_changed_model_and_marks_gone(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """Second visit: one new latest version, one model gone (404 on its page)."""
    crawl(host(server, sleeps), store)
    server.visit = 1
    server.reset()
    store.events.clear()
    crawl(host(server, sleeps), store)
    assert server.count("/versions") == 1
    events = {(e[0], e[1]) for e in store.events}
    assert ("fofr/latent-consistency-model", "changed") in events
    assert ("stability-ai/sdxl", "gone") in events


def test_refused_token_is_reported_without_the_token(
    server: ReplayServer,
    sleeps: list[float],
    store: FakeStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 401 stops the run with AuthRequired naming the variable, never the token."""
    server.fail(LIST, 401)
    with pytest.raises(AuthRequired, match="REPLICATE_API_TOKEN") as info:
        crawl(host(server, sleeps), store)
    assert TOKEN not in str(info.value)
    assert TOKEN not in caplog.text
    assert all(TOKEN not in e[3] for e in store.errors)
