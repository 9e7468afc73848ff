"""Civitai by hash: batches of 100 sha256s POSTed, found models saved whole."""

from __future__ import annotations

import hashlib
import json

import pytest
from fakes import FakeStore
from replay import ReplayServer

from modelscan.errors import AuthRequired, UnexpectedResponse
from modelscan.registry import make_host
from modelscan.registry.base import crawl
from modelscan.registry.civitai_byhash import (
    CivitaiByHashHost,
    model_from_version,
    parse_versions,
)
from modelscan.registry.http import HttpClient

# SHA256 of files of the recorded Civitai page (models 4384 and 43331).
DREAMSHAPER = "879db523c30d3b9017143d56705015e15a2cb5628762c11d086fed9538abd7fd"
MAJICMIX = "7c819b6d13663ed720c2254f4fe18373107dfef2448d337913c8fc545640881e"


def unknown(n: int) -> list[str]:
    """sha256s no host holds."""
    return [hashlib.sha256(f"nowhere {i}".encode()).hexdigest() for i in range(n)]


def host(
    server: ReplayServer, sleeps: list[float], hashes: list[str]
) -> CivitaiByHashHost:
    client = HttpClient("civitai", sleep=sleeps.append, token_env="CIVITAI_API_TOKEN")
    return CivitaiByHashHost(client, server.base("civitai"), hashes=hashes)


def test_found_hashes_give_whole_models_and_the_rest_nothing(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """Two of five hashes are on Civitai: their models are saved with every version."""
    stats = crawl(host(server, sleeps, [DREAMSHAPER, MAJICMIX, *unknown(3)]), store)
    assert {k[1] for k in store.repos} == {"4384", "43331"}
    assert len(store.files["civitai", "4384"]) == 3  # every version's file, not one
    shas = {f.sha256 for f in store.files["civitai", "4384"].values()}
    assert DREAMSHAPER in shas
    assert (stats.new, stats.requests) == (2, 1 + 2)  # one POST, one GET per model
    post = next(r for r in server.requests if r.method == "POST")
    assert post.path == "/api/v1/model-versions/by-hash"
    sent = json.loads(post.body)
    assert DREAMSHAPER.upper() in sent
    assert len(sent) == 5


def test_hashes_are_sent_100_a_request_and_the_cursor_is_the_last_asked(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """250 hashes: three POSTs of 100, 100, 50, sorted; the pass ends with no cursor."""
    byhash = host(server, sleeps, unknown(250))
    stats = crawl(byhash, store)
    bodies = [json.loads(r.body) for r in server.requests if r.method == "POST"]
    assert [len(b) for b in bodies] == [100, 100, 50]
    assert [h for b in bodies for h in b] == [h.upper() for h in sorted(unknown(250))]
    assert [len(b) for b in byhash.batches] == [100, 100, 50]
    assert (stats.pages, store.cursors["civitai", "by-hash"]) == (3, None)


def test_a_killed_run_resumes_after_the_last_committed_batch(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """The process dies at the second commit; the next run asks from batch two on."""
    store.fail_after_pages = 1
    with pytest.raises(KeyboardInterrupt):
        crawl(host(server, sleeps, unknown(250)), store)
    store.fail_after_pages = None
    store.locks.clear()
    server.reset()
    crawl(host(server, sleeps, unknown(250)), store)
    bodies = [json.loads(r.body) for r in server.requests if r.method == "POST"]
    assert [len(b) for b in bodies] == [100, 50]


def test_a_503_then_an_answer_is_retried_by_the_one_policy(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """HttpClient.send retries the POST after a 503; the model is found."""
    server.fail("/civitai/api/v1/model-versions/by-hash", 503)
    stats = crawl(host(server, sleeps, [DREAMSHAPER]), store)
    assert (stats.new, len(sleeps)) == (1, 1)


def test_an_answer_that_is_not_a_list_is_unexpected() -> None:
    """A by-hash answer must be a list of versions; anything else is refused."""
    with pytest.raises(UnexpectedResponse, match="list of versions"):
        parse_versions({"error": "x"}, "u")


def test_a_version_alone_becomes_a_model_item() -> None:
    """When its model is not served, a version is saved under its model's id."""
    model = {"name": "toad", "type": "Checkpoint"}
    item = model_from_version({"id": 7, "modelId": 3, "files": [], "model": model})
    assert (item["id"], item["name"], item["type"]) == (3, "toad", "Checkpoint")
    assert item["modelVersions"] == [{"id": 7, "modelId": 3, "files": []}]


def test_make_host_builds_by_hash_for_civitai_only() -> None:
    """by_hash=True gives the by-hash host (bad hashes dropped); other hosts refuse."""
    byhash = make_host("civitai", by_hash=True, hashes=[DREAMSHAPER.upper(), "zz"])
    assert isinstance(byhash, CivitaiByHashHost)
    assert byhash.hashes == [DREAMSHAPER]
    with pytest.raises(ValueError, match="--host civitai"):
        make_host("huggingface", by_hash=True)


def test_a_reset_mid_answer_is_retried_and_a_bad_token_names_its_variable(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """A POST answer cut mid-body is sent again; a refused token stops the run."""
    server.fail("/civitai/api/v1/model-versions/by-hash", reset=True)
    assert crawl(host(server, sleeps, [DREAMSHAPER]), store).new == 1
    client = HttpClient("civitai", token="civ-bad", token_env="CIVITAI_API_TOKEN",
                        sleep=sleeps.append)  # fmt: skip
    server.bad_tokens.add("civ-bad")
    refused = CivitaiByHashHost(client, server.base("civitai"), hashes=[MAJICMIX])
    with pytest.raises(AuthRequired, match="CIVITAI_API_TOKEN") as caught:
        crawl(refused, FakeStore())
    assert "civ-bad" not in str(caught.value)
