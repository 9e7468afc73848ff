"""Registry fixtures: the replay server, fake sleep, an in-memory store, a fake host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes import FakeHost, FakeStore
from replay import ReplayServer

from modelscan.registry.http import HttpClient


@pytest.fixture
def store() -> FakeStore:
    """An empty in-memory index."""
    return FakeStore()


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    """The replay server on 127.0.0.1, serving tests/data/hosts."""
    with ReplayServer() as srv:
        yield srv


@pytest.fixture
def sleeps() -> list[float]:
    """The waits a client asked for (a fake sleep appends instead of waiting)."""
    return []


@pytest.fixture(autouse=True)
def _no_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide which tokens exist; the machine's own are never used."""
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "CIVITAI_API_TOKEN",
        "REPLICATE_API_TOKEN",
        "HF_ENDPOINT",
        "MODELSCAN_CIVITAI_URL",
        "MODELSCAN_REPLICATE_URL",
        "MODELSCOPE_API_TOKEN",
        "MODELSCOPE_ENDPOINT",
        "MODELSCAN_OLLAMA_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")


@pytest.fixture
def fake_host(sleeps: list[float]) -> FakeHost:
    """Three pages of two listings."""
    client = HttpClient("fake", sleep=sleeps.append)
    return FakeHost(client, pages=[["a", "b"], ["c", "d"], ["e", "f"]])
