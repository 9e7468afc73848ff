"""make_host: every host of HOSTS built one way, from the environment and options."""

from __future__ import annotations

import pytest

from modelscan.errors import AuthRequired
from modelscan.registry import HOSTS, make_host
from modelscan.registry.civitai import CivitaiHost
from modelscan.registry.huggingface import HuggingFaceHost
from modelscan.registry.replicate import ReplicateHost


class NoBudget:
    """A shared budget that always has a slot."""

    def reserve(self, url: str) -> float:
        return 0.0

    def pause(self, url: str, seconds: float) -> None:
        pass


@pytest.mark.parametrize("name", list(HOSTS))
def test_each_host_is_built_with_the_shared_client_options(name: str) -> None:
    """Endpoint, rate, sleep, token and budget reach the host of that name."""
    budget, sleeps = NoBudget(), []
    host = make_host(name, endpoint="http://mirror.example/", rate=4.0,
                     sleep=sleeps.append, token="tok-1", budget=budget)  # fmt: skip
    assert type(host) is HOSTS[name]
    assert host.base_url == "http://mirror.example"  # type: ignore[attr-defined]
    assert (host.client.host, host.client.budget) == (name, budget)
    assert (host.client.min_interval, host.client.has_token) == (0.25, True)
    assert (host.cursor_key, host.complete_listing) == ("default", True)


def test_filters_narrow_the_listing_in_each_hosts_words() -> None:
    """--author, --search and --filter become the Hub's and Civitai's parameters."""
    hf = make_host("huggingface", author="openai", search="whisper", tag="asr")
    assert isinstance(hf, HuggingFaceHost)
    assert hf.filters == {"author": "openai", "search": "whisper", "filter": "asr"}
    civitai = make_host("civitai", author="someone", search="x", tag="anime")
    assert isinstance(civitai, CivitaiHost)
    assert civitai.filters == {"username": "someone", "query": "x", "tag": "anime"}
    assert not civitai.complete_listing
    assert civitai.cursor_key == "query=x&tag=anime&username=someone"


def test_replicate_refuses_filters_before_asking_for_its_token() -> None:
    """Replicate has no filters (ValueError, even without a token); needs a token."""
    for given in ({"author": "a"}, {"search": "s"}, {"tag": "t"}):
        with pytest.raises(ValueError, match="no --author, --search or --filter"):
            make_host("replicate", **given)
    with pytest.raises(AuthRequired, match="REPLICATE_API_TOKEN"):
        make_host("replicate")
    assert isinstance(make_host("replicate", token="r8_x"), ReplicateHost)


def test_an_unknown_host_is_a_key_error_naming_the_choices() -> None:
    """A name outside HOSTS: KeyError listing the hosts there are."""
    with pytest.raises(KeyError, match="unknown host 'gitlab'; choose from "
                       "huggingface, civitai, replicate"):  # fmt: skip
        make_host("gitlab")


def test_an_option_no_host_takes_is_a_type_error() -> None:
    """A misspelt option is refused, not silently dropped."""
    with pytest.raises(TypeError, match="unknown options: limit"):
        make_host("civitai", limit=5)  # type: ignore[call-arg]
