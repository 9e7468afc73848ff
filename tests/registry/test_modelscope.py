"""ModelScope: recorded-shape pages parsed purely, crawls and recrawls over replay."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeStore
from replay import DATA, ReplayServer

from modelscan.errors import (
    AuthRequired,
    HostUnavailable,
    RateLimited,
    UnexpectedResponse,
)
from modelscan.records import LineageRef
from modelscan.registry import make_host
from modelscan.registry.base import crawl
from modelscan.registry.http import HttpClient
from modelscan.registry.modelscope import (
    ModelScopeHost,
    envelope_data,
    front_matter,
    listed_parents,
    page_models,
    parse_card_lineage,
    parse_files,
    parse_model,
)

V1 = DATA / "modelscope" / "api" / "v1"
TOKEN = "ms-test-token-42"
QWEN = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
MINILM = "AI-ModelScope/all-MiniLM-L6-v2"
MINILM_SHA = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def load(name: str) -> Any:
    return json.loads((V1 / name).read_text())


def host(server: ReplayServer, sleeps: list[float], **options: Any) -> ModelScopeHost:
    client = HttpClient("modelscope", sleep=sleeps.append,
                        token_env="MODELSCOPE_API_TOKEN",
                        token=options.pop("token", None))  # fmt: skip
    return ModelScopeHost(client, server.base("modelscope"), **options)


# --- pure ----------------------------------------------------------------------------


def test_a_list_page_gives_models_with_their_revision_and_counts() -> None:
    """Path/Name is the id, LastUpdatedTime the revision, Downloads and Stars reach."""
    data = envelope_data("u", 200, load("dolphin/models,PageNumber=1.json"))
    models, total = page_models(data)
    listing = parse_model(models[0])
    assert (listing.host_id, listing.revision, total) == (QWEN, "1726900000", 3)
    assert (listing.downloads, listing.likes, listing.kind) == (
        51234, 40, "text-generation"
    )  # fmt: skip
    assert listing.lineage == ()  # declared with the details, the card's words first
    assert listed_parents(QWEN, listing.extra) == [
        LineageRef(
            "modelscope:Qwen/Qwen2.5-0.5B-Instruct", "finetune", "declared-card"
        ),
    ]


def test_an_envelope_saying_failure_is_unexpected() -> None:
    """Success false (a 200 with a Code) is refused with its message."""
    body = {"Code": 10010205001, "Success": False, "Message": "model not found"}
    with pytest.raises(UnexpectedResponse, match="model not found"):
        envelope_data("u", 200, {**body, "Data": None})


def test_files_keep_blobs_with_sha256_and_size_and_drop_folders() -> None:
    """Type tree is left out, each blob keeps Size and Sha256 and a download URL."""
    data = envelope_data("u", 200, load(
        f"models/{MINILM}/repo/files,Recursive=True&Revision=master.json"))  # fmt: skip
    files = {f.path: f for f in parse_files(data, host_id=MINILM, base_url="https://m")}
    assert "1_Pooling" not in files
    model = files["model.safetensors"]
    assert (model.sha256, model.size) == (MINILM_SHA, 90868376)
    assert model.url == (
        f"https://m/api/v1/models/{MINILM}/repo?Revision=master"
        "&FilePath=model.safetensors"
    )


def test_a_card_declares_its_base_and_a_mirror_of_hugging_face() -> None:
    """base_model and relation from the front matter; the same-named HF repo a copy."""
    card = ("---\nbase_model:\n  - Qwen/Qwen2.5-0.5B\nbase_model_relation: quantized\n"
            "---\nMirror of https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF and "
            "see https://huggingface.co/other/thing.\n")  # fmt: skip
    refs = parse_card_lineage(QWEN, card)
    assert refs == (
        LineageRef("modelscope:Qwen/Qwen2.5-0.5B", "quantized", "declared-card"),
        LineageRef("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF", "copy",
                   "declared-description"),
        LineageRef("hf:other/thing", "unknown", "declared-description"),
    )  # fmt: skip
    assert front_matter("no front matter", ("base_model",)) == {}


def test_a_malformed_model_is_an_item_error() -> None:
    """An item without Path is an ItemError of its page, the others are parsed."""
    page_host = ModelScopeHost(HttpClient("modelscope"))
    from modelscan.registry.base import Page

    out = list(page_host.parse_page(Page([{"Name": "x"}, {"Path": "a", "Name": "b"}],
                                         None)))  # fmt: skip
    assert out[0].item == "page 1 model 0"  # type: ignore[union-attr]
    assert out[1].host_id == "a/b"  # type: ignore[union-attr]


# --- against the replay server -------------------------------------------------------


def test_pages_are_put_with_their_number_in_the_body(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """The catalogue is PUT with PageNumber/PageSize; --author uses Path (HubApi)."""
    page = host(server, sleeps).fetch_page(None)
    assert len(page.payload) == 3
    assert page.next_cursor is None  # TotalCount 3 reached
    sent = json.loads(server.requests[-1].body)
    assert (server.requests[-1].method, sent["PageNumber"]) == ("PUT", 1)
    qwen = host(server, sleeps, author="Qwen").fetch_page(None)
    assert [m["Name"] for m in qwen.payload] == ["Qwen2.5-0.5B-Instruct-GGUF"]
    assert json.loads(server.requests[-1].body)["Path"] == "Qwen"
    assert server.requests[-1].path == "/api/v1/models/"


def test_crawl_then_recrawl_costs_files_only_for_the_changed_model(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """Visit 2: Qwen changed (a new file), MiniLM unchanged (no files), damo deleted."""
    stats = crawl(host(server, sleeps), store)
    assert (stats.new, stats.requests) == (3, 1 + 3 + 3)  # list, files, cards
    assert store.files["modelscope", MINILM]["model.safetensors"].sha256 == MINILM_SHA
    minilm = store.repos["modelscope", MINILM]["lineage"]
    assert LineageRef("hf:sentence-transformers/all-MiniLM-L6-v2", "copy",
                      "declared-description") in minilm  # fmt: skip
    server.visit = 1
    server.reset()
    again = crawl(host(server, sleeps), store)
    assert (again.changed, again.unchanged, again.gone) == (1, 1, 1)
    assert server.count(f"{MINILM}/repo") == 0
    assert "qwen2.5-0.5b-instruct-q4_k_m.gguf" in store.files["modelscope", QWEN]
    assert (
        store.repos["modelscope", "damo/nlp_structbert_backbone_base_std"]["status"]
        == "gone"
    )


def test_a_429_waits_as_asked_and_the_page_is_read(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """Retry-After on the list call is obeyed by HttpClient.send."""
    server.fail("/modelscope/api/v1/dolphin/models", 429, headers={"Retry-After": "7"})
    assert len(host(server, sleeps).fetch_page(None).payload) == 3
    assert sleeps == [7.0]


def test_a_429_that_never_ends_is_rate_limited(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """429 on every try: RateLimited after the retries, nothing half-saved."""
    server.fail("/modelscope/", 429, times=None)
    with pytest.raises(RateLimited):
        host(server, sleeps).fetch_page(None)


def test_the_token_is_sent_as_bearer_and_a_401_names_its_variable(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """MODELSCOPE_API_TOKEN travels in the header; a refused one says what to fix."""
    ms = host(server, sleeps, token=TOKEN)
    ms.fetch_page(None)
    assert server.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    server.bad_tokens.add(TOKEN)
    with pytest.raises(AuthRequired, match="MODELSCOPE_API_TOKEN") as caught:
        ms.fetch_page(None)
    assert TOKEN not in str(caught.value)


def test_a_reset_mid_file_listing_is_retried(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """A connection cut in the middle of a file listing is tried again; all is saved."""
    server.fail(f"/modelscope/api/v1/models/{QWEN}/repo/files", reset=True)
    stats = crawl(host(server, sleeps), store)
    assert (stats.errors, stats.new) == (0, 3)
    assert server.count(f"{QWEN}/repo/files") == 2


def test_make_host_reads_the_ecosystems_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MODELSCOPE_ENDPOINT and MODELSCOPE_API_TOKEN, as the official client reads."""
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "https://www.modelscope.ai/")
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", TOKEN)
    ms = make_host("modelscope")
    assert isinstance(ms, ModelScopeHost)
    assert (ms.base_url, ms.client.has_token) == ("https://www.modelscope.ai", True)
    with pytest.raises(ValueError, match="--author"):
        make_host("modelscope", search="qwen")


def test_check_tells_gone_renamed_and_live(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """404 is gone; an answer under another id is renamed; the same id is live."""
    ms = host(server, sleeps)
    assert ms.check("damo/does-not-exist") == "gone"
    assert ms.check("damo/nlp_structbert_old_name") == "renamed"
    server.fail("/modelscope/api/v1/models/Qwen/x", 500, times=None)
    with pytest.raises(HostUnavailable):
        ms.check("Qwen/x")


def test_unix_times_become_the_hosts_dates() -> None:
    """CreatedTime dates the repo, LastUpdatedTime its head, CommittedDate a file."""
    from datetime import UTC, datetime

    data = envelope_data("u", 200, load("dolphin/models,PageNumber=1.json"))
    listing = parse_model(page_models(data)[0][0])
    assert listing.published_at == datetime.fromtimestamp(1726800000, UTC)
    assert listing.updated_at == datetime.fromtimestamp(1726900000, UTC)
    entry = {"Path": "a.bin", "Type": "blob", "CommittedDate": 1726900000}
    files = parse_files({"Files": [entry]}, host_id="o/n")
    assert files[0].published_at == datetime.fromtimestamp(1726900000, UTC)


def test_limit_keeps_the_page_size_so_page_numbers_stay_meaningful(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """--limit 2 saves two models, asks 100 a page, and resumes on the same page."""
    stats = crawl(host(server, sleeps), store, limit=2)
    assert stats.listings == 2
    assert json.loads(server.requests[0].body)["PageSize"] == 100
    assert store.cursors["modelscope", "default"] is None  # first page, kept
    again = crawl(host(server, sleeps), store)
    assert (again.new, again.unchanged) == (1, 2)


def test_the_card_relation_wins_and_a_recrawl_declares_nothing_new(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """Qwen's BaseModel is its card's quantized parent; seen again, nothing is added."""
    crawl(host(server, sleeps), store)
    qwen = store.repos["modelscope", QWEN]["lineage"]
    parents = {r.parent: r.relation for r in qwen}
    assert parents["modelscope:Qwen/Qwen2.5-0.5B-Instruct"] == "quantized"
    crawl(host(server, sleeps), store, full=True)
    assert store.repos["modelscope", QWEN]["lineage"] == set()  # listed, not declared
