"""References: one parser for the registry and lineage, every URL form answered."""

from __future__ import annotations

import pytest

from modelscan.refs import (
    HOST_PREFIXES,
    find_links,
    hf_ref,
    parse_any_ref,
    parse_ref,
    ref_for,
    repo_ref_forms,
    url_ref,
)
from modelscan.registry import HOSTS


@pytest.mark.parametrize(
    ("url", "ref"),
    [
        ("https://huggingface.co/org/name", "hf:org/name"),
        ("https://huggingface.co/org/name/tree/main", "hf:org/name"),
        ("https://huggingface.co/org/name/blob/main/model.safetensors", "hf:org/name"),
        ("https://huggingface.co/org/name/resolve/main/model.bin", "hf:org/name"),
        ("https://huggingface.co/org/name/commit/0123abc", "hf:org/name"),
        ("https://huggingface.co/gpt2", "hf:gpt2"),
        ("https://huggingface.co/gpt2/tree/main", "hf:gpt2"),
        ("https://huggingface.co/gpt2/resolve/main/config.json", "hf:gpt2"),
        ("https://hf.co/org/name", "hf:org/name"),
        ("http://www.huggingface.co/org/name?x=1#top", "hf:org/name"),
        ("https://huggingface.co/api/models/org/name", "hf:org/name"),
        ("https://civitai.com/models/4384/dreamshaper", "civitai:4384"),
        ("https://civitai.com/models/4384?modelVersionId=128713", "civitai:4384"),
        ("https://replicate.com/owner/model/versions/abc", "replicate:owner/model"),
    ],
)
def test_host_urls_name_their_repo(url: str, ref: str) -> None:
    """Tree, blob, resolve and commit pages, short links and legacy ids: the repo."""
    assert url_ref(url) == ref


@pytest.mark.parametrize(
    "url",
    [
        "https://huggingface.co/datasets/org/name",
        "https://huggingface.co/datasets/org/name/tree/main",
        "https://hf.co/datasets/org/name",
        "https://huggingface.co/spaces/org/demo",
        "https://huggingface.co/docs/transformers",
        "https://huggingface.co/",
        "https://civitai.com/api/download/models/128713",
        "https://example.com/org/name",
        "ftp://huggingface.co/org/name",
    ],
)
def test_datasets_spaces_and_other_pages_are_no_model(url: str) -> None:
    """Datasets, spaces, docs, downloads and other sites name no model repo."""
    assert url_ref(url) is None


def test_references_print_and_parse_back() -> None:
    """ref_for and parse_ref are inverses; the host's own name is a prefix too."""
    for host in HOST_PREFIXES:
        assert parse_ref(ref_for(host, "a/b")) == (host, "a/b")
    assert parse_ref("huggingface:org/name") == ("huggingface", "org/name")
    assert parse_ref("sha256:" + "0" * 64) is None
    assert parse_ref("SD 1.5") is None
    assert parse_any_ref("https://hf.co/org/name") == ("huggingface", "org/name")


def test_every_registry_host_has_a_prefix() -> None:
    """The hosts references know are exactly modelscan.registry.HOSTS."""
    assert set(HOST_PREFIXES) == set(HOSTS)


def test_declared_names_become_references() -> None:
    """A repo id or a host URL in a card becomes a reference; other text stays."""
    assert hf_ref(" mistralai/Mistral-7B-v0.1 ") == "hf:mistralai/Mistral-7B-v0.1"
    assert hf_ref("https://huggingface.co/org/name/tree/main") == "hf:org/name"
    assert hf_ref("/home/me/llama") == "/home/me/llama"
    assert hf_ref("SD 1.5") == "SD 1.5"


def test_links_in_text_and_spellings_of_a_repo() -> None:
    """Links in prose are found once each; a repo's spellings include its URL."""
    text = (
        "Weights: https://huggingface.co/TheBloke/Llama-2-7b-Chat-GPTQ. "
        "Data: https://huggingface.co/datasets/x/y, see (https://civitai.com/models/7)"
        " and https://huggingface.co/TheBloke/Llama-2-7b-Chat-GPTQ/tree/main"
    )
    assert find_links(text) == ["hf:TheBloke/Llama-2-7b-Chat-GPTQ", "civitai:7"]
    assert repo_ref_forms("civitai", "7", None) == [
        "civitai:7",
        "https://civitai.com/models/7",
    ]


def test_links_can_be_kept_to_some_hosts() -> None:
    """hosts= keeps the links to those hosts only, in order of first mention."""
    text = (
        "https://replicate.com/owner/model/api uses https://civitai.com/models/9 "
        "and https://hf.co/org/name"
    )
    assert find_links(text) == ["replicate:owner/model", "civitai:9", "hf:org/name"]
    assert find_links(text, hosts=("huggingface", "civitai")) == [
        "civitai:9",
        "hf:org/name",
    ]
    assert find_links(text, hosts=()) == []


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        ("**https://huggingface.co/org/name**", ["hf:org/name"]),
        ("| https://huggingface.co/org/name|x |", ["hf:org/name"]),
        ("[w](https://huggingface.co/org/name), then", ["hf:org/name"]),
        ('<a href="https://huggingface.co/org/name">', ["hf:org/name"]),
        ("{https://huggingface.co/org/name}", ["hf:org/name"]),
        ("https://huggingface.co/gpt2 and https://hf.co/gpt2/tree/main", ["hf:gpt2"]),
        ("https://huggingface.co/models?license=license:apache-2.0", []),
        ("https://huggingface.co/spaces/CompVis/sd-license", []),
    ],
)
def test_links_in_markdown_and_html(text: str, refs: list[str]) -> None:
    """Emphasis, table cells, Markdown and HTML links end where the URL ends."""
    assert find_links(text) == refs
