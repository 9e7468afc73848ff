"""Report fixtures: the replayed two-host world, crawled and linked by the real CLI.

``indexed`` is a database (SQLite file or PostgreSQL schema, one per test
module) holding the world of ``report_world.py`` after ``modelscan crawl`` of
both hosts (the Hub with ``--deep``), the hostile repo saved through the Store
API, and ``modelscan link``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report_world  # noqa: E402
from replay import ReplayServer  # noqa: E402

from modelscan.db.engine import open_store  # noqa: E402

TOKENS = ("HF_TOKEN", "CIVITAI_API_TOKEN", "REPLICATE_API_TOKEN")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """The replayed hosts' folder and the weights they list (written once)."""
    root = tmp_path_factory.mktemp("report-world")
    return root, report_world.write_world(root)


@pytest.fixture(scope="module")
def indexed(
    module_db_url: str,
    hosts: tuple[Path, dict[str, bytes]],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The world crawled (both hosts) and linked, plus the hostile repo; its URL."""
    home = tmp_path_factory.mktemp("hf-home")
    with ReplayServer(hosts[0]) as server, pytest.MonkeyPatch.context() as mp:
        for name in (*TOKENS, "MODELSCAN_DATABASE_URL"):
            mp.delenv(name, raising=False)
        mp.setenv("HF_ENDPOINT", server.base("huggingface"))
        mp.setenv("MODELSCAN_CIVITAI_URL", server.base("civitai"))
        mp.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
        mp.setenv("HF_HOME", str(home))
        for host in ("huggingface", "civitai"):
            deep = ["--deep"] if host == "huggingface" else []
            out = report_world.run(
                "crawl", "--host", host, *deep, "--db", module_db_url, "--json"
            )
            assert json.loads(out)["hosts"][0]["errors"] == 0, out
    with open_store(module_db_url) as store:
        report_world.add_hostile_repo(store, hosts[1]["base"])
    report_world.run("link", "--db", module_db_url)
    return module_db_url
