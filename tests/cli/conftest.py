"""CLI fixtures: the replay server over a world of recorded hosts, env pointing at it.

``world`` is the folder the server answers from: the recorded hosts by default;
a test module overrides the fixture to serve a world of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from replay import DATA, ReplayServer


@pytest.fixture
def world() -> Path:
    """The recorded hosts under tests/data/hosts."""
    return DATA


@pytest.fixture
def server(world: Path) -> Iterator[ReplayServer]:
    """The replay server on 127.0.0.1, answering from ``world``."""
    with ReplayServer(world) as srv:
        yield srv


@pytest.fixture
def env(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """Environment pointing every host at the replay server; no tokens."""
    values = {
        "HF_ENDPOINT": server.base("huggingface"),
        "MODELSCAN_CIVITAI_URL": server.base("civitai"),
        "MODELSCAN_REPLICATE_URL": server.base("replicate"),
        "MODELSCAN_OLLAMA_URL": server.base("ollama"),
        "MODELSCOPE_ENDPOINT": server.base("modelscope"),
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    for name in ("HF_TOKEN", "CIVITAI_API_TOKEN", "REPLICATE_API_TOKEN",
                 "MODELSCOPE_API_TOKEN", "MODELSCAN_DATABASE_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values
