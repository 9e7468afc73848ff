"""Ollama: names parsed, the recorded gemma:2b manifest, tags read over replay."""

from __future__ import annotations

import hashlib
import json

import pytest
from fakes import FakeStore
from replay import DATA, ReplayServer

from modelscan.errors import HostUnavailable, UnexpectedResponse
from modelscan.registry import make_host
from modelscan.registry.base import crawl
from modelscan.registry.http import HttpClient
from modelscan.registry.ollama import (
    MANIFEST_ACCEPT,
    OllamaHost,
    manifest_digest,
    name_listing,
    parse_manifest,
    parse_name,
    parse_names,
)

MANIFESTS = DATA / "ollama" / "v2" / "library" / "gemma" / "manifests"
GEMMA_GGUF = "c1864a5eb19305c40519da12cc543519e48a0697ecd30e15d5ac228644957d12"
QWEN = "library/qwen2.5:0.5b-instruct-q8_0"


def host(server: ReplayServer, sleeps: list[float], *names: str) -> OllamaHost:
    client = HttpClient("ollama", sleep=sleeps.append)
    return OllamaHost(client, server.base("ollama"), names=names)


# --- pure ----------------------------------------------------------------------------


def test_names_are_spelled_namespace_name_tag() -> None:
    """Official models get library/, no tag is latest, the registry prefix goes."""
    assert parse_name("gemma:2b") == "library/gemma:2b"
    assert parse_name("llama3.2") == "library/llama3.2:latest"
    assert parse_name("registry.ollama.ai/user/model:q4_K_M") == "user/model:q4_K_M"


@pytest.mark.parametrize("bad", ["", "a/b/c:1", "Gemma:2b", "gemma:", "x" * 300])
def test_a_bad_name_is_a_value_error_naming_it(bad: str) -> None:
    """Upper case, three segments, an empty tag or a huge name are refused."""
    with pytest.raises(ValueError, match="Ollama"):
        parse_name(bad)


def test_a_names_file_skips_comments_and_names_the_bad_line() -> None:
    """One name a line; # comments and blanks skipped; a bad line gives its number."""
    assert parse_names(["# tags", "gemma:2b", "", "qwen2.5  # small"]) == [
        "library/gemma:2b",
        "library/qwen2.5:latest",
    ]
    with pytest.raises(ValueError, match="line 2"):
        parse_names(["gemma:2b", "NOT/ok/at:all"])


def test_the_recorded_manifest_gives_the_gguf_as_a_file_and_every_layer() -> None:
    """The model layer is model.gguf with its digest as sha256; all layers are kept."""
    body = (MANIFESTS / "2b.json").read_bytes()
    digest = manifest_digest({}, body)
    assert digest == "sha256:" + hashlib.sha256(body).hexdigest()
    listing = parse_manifest(
        name_listing("library/gemma:2b"), json.loads(body), digest=digest,
        base_url="https://registry.ollama.ai",
    )  # fmt: skip
    (gguf,) = listing.files
    assert (gguf.path, gguf.sha256, gguf.size) == ("model.gguf", GEMMA_GGUF, 1678447520)
    assert gguf.url == (
        f"https://registry.ollama.ai/v2/library/gemma/blobs/sha256:{GEMMA_GGUF}"
    )
    kinds = [layer["media_type"].rsplit(".", 1)[1] for layer in listing.extra["layers"]]
    assert kinds == ["model", "license", "template", "params"]
    assert listing.revision == digest
    assert listing.extra["has_license"] is True
    assert listing.url == "https://ollama.com/library/gemma:2b"


def test_a_layer_without_a_sha256_digest_is_unexpected() -> None:
    """A manifest whose layer digest is not sha256:<64 hex> is refused, not guessed."""
    manifest = {"layers": [{"mediaType": "application/vnd.ollama.image.model",
                            "digest": "md5:abc", "size": 1}]}  # fmt: skip
    with pytest.raises(UnexpectedResponse, match="sha256"):
        parse_manifest(
            name_listing("library/x:1"), manifest, digest="sha256:" + "0" * 64
        )


# --- against the replay server -------------------------------------------------------


def test_a_tag_is_read_with_the_manifest_accept_header(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """One GET per tag, asking for schema 2; the header digest is the revision."""
    ollama = host(server, sleeps, "gemma:2b")
    listing = ollama.fetch_details(name_listing("library/gemma:2b"))
    meta = json.loads((MANIFESTS / "2b.meta.json").read_text())
    assert listing.revision == meta["headers"]["Docker-Content-Digest"]
    (request,) = server.requests
    assert request.path == "/v2/library/gemma/manifests/2b"
    assert request.headers["accept"] == MANIFEST_ACCEPT


def test_a_recrawl_sees_the_digest_change_and_the_tag_disappear(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """Second visit: gemma:2b has a new model layer; the qwen tag answers 404: gone."""
    key = ("ollama", "library/gemma:2b")
    crawl(host(server, sleeps, "gemma:2b", QWEN), store)
    first = store.repos[key]["revision"]
    server.visit = 1
    stats = crawl(host(server, sleeps, "gemma:2b", QWEN), store, full=True)
    assert store.repos[key]["revision"] != first
    assert store.files[key]["model.gguf"].sha256 != GEMMA_GGUF
    assert ("library/gemma:2b", "changed", "live") in store.events
    assert (stats.changed, stats.gone) == (1, 1)
    assert store.repos["ollama", QWEN]["status"] == "gone"


def test_a_tag_never_known_that_answers_404_is_an_error_not_gone(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """A typo'd tag is the run's error (asked twice), and nothing is gone."""
    stats = crawl(host(server, sleeps, "gemma:2b", "gemma:7b-missing"), store)
    assert (stats.gone, stats.errors, stats.listings) == (0, 1, 2)
    assert "404" in store.errors[0][3]
    assert server.count("7b-missing") == 2


def test_a_reset_mid_manifest_and_a_503_are_retried_by_the_one_policy(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """HttpClient.send retries a cut connection and a 503; the tag is read."""
    server.fail("/ollama/v2/library/gemma/manifests/2b", reset=True)
    server.fail("/ollama/v2/library/gemma/manifests/2b", 503)
    listing = host(server, sleeps, "gemma:2b").fetch_details(
        name_listing("library/gemma:2b")
    )
    assert listing.files[0].sha256 == GEMMA_GGUF
    assert server.count("manifests/2b") == 3
    assert len(sleeps) == 2


def test_a_registry_down_is_host_unavailable_after_the_retries(
    server: ReplayServer, sleeps: list[float]
) -> None:
    """500 on every try: HostUnavailable, the same error every host gives."""
    server.fail("/ollama/", 500, times=None)
    with pytest.raises(HostUnavailable, match="ollama"):
        host(server, sleeps, "gemma:2b").fetch_details(name_listing("library/gemma:2b"))


def test_make_host_hands_the_names_to_ollama_only() -> None:
    """names= reach Ollama (sorted, spelled); another host refuses them."""
    ollama = make_host("ollama", names=["gemma:2b", "library/gemma:2b", "phi3"])
    assert isinstance(ollama, OllamaHost)
    assert ollama.names == ["library/gemma:2b", "library/phi3:latest"]
    assert ollama.cursor_key.startswith("names-")
    with pytest.raises(ValueError, match="--host ollama"):
        make_host("civitai", names=["gemma:2b"])
    with pytest.raises(ValueError, match="--model"):
        make_host("ollama", author="google")


def test_ollama_and_modelscope_urls_are_references() -> None:
    """ollama.com/library/NAME:TAG and modelscope.cn/models/ORG/NAME name repos."""
    from modelscan.refs import url_ref

    assert url_ref("https://ollama.com/library/gemma:2b") == "ollama:library/gemma:2b"
    assert url_ref("https://ollama.com/search?q=x") is None
    assert url_ref("https://www.modelscope.cn/models/Qwen/Qwen2.5-7B/files") == (
        "modelscope:Qwen/Qwen2.5-7B"
    )


def test_a_refused_tag_is_one_items_error_and_the_others_are_read(
    server: ReplayServer, sleeps: list[float], store: FakeStore
) -> None:
    """403 on one tag: recorded with a message saying why, the crawl goes on."""
    server.fail("/ollama/v2/library/qwen2.5/", 403, times=None)
    stats = crawl(host(server, sleeps, "gemma:2b", QWEN), store)
    assert (stats.listings, stats.errors, stats.new) == (2, 1, 1)
    assert "HTTP 403" in store.errors[0][3]
    assert "private model" in store.errors[0][3]
