"""Crawls of the replayed hosts into the real index, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from replay import ReplayServer
from sqlalchemy import Connection, text

from modelscan.db.engine import open_store
from modelscan.db.store import Store
from modelscan.records import crc32_from_civitai
from modelscan.registry.base import SweepStore, crawl
from modelscan.registry.civitai import CivitaiHost
from modelscan.registry.http import HttpClient
from modelscan.registry.huggingface import HuggingFaceHost
from modelscan.registry.replicate import ReplicateHost


@pytest.fixture
def real_store(db_url: str) -> Iterator[Store]:
    """The real index on a SQLite file, or in a private PostgreSQL schema."""
    store = open_store(db_url)
    yield store
    store.close()


def rows(store: Store, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    def run(conn: Connection) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in conn.execute(text(sql), params)]

    return list(store.execute(run))


def client(name: str, token: str | None = None) -> HttpClient:
    return HttpClient(name, token=token, sleep=lambda s: None)


def test_huggingface_crawl_and_recrawl_fill_the_index(
    server: ReplayServer, real_store: Store
) -> None:
    """Repos, files with LFS sha256, declared parents and the recrawl's events."""
    hf = HuggingFaceHost(client("huggingface"), server.base("huggingface"))
    records = server.hf_records()
    stats = crawl(hf, real_store)
    assert stats.status == "ok"
    repos = dict(
        rows(real_store, "SELECT host_id, revision FROM repos WHERE host='huggingface'")
    )
    assert repos == {i: r["sha"] for i, r in records.items()}
    eicar = dict(
        rows(
            real_store,
            "SELECT f.path, f.sha256 FROM files f JOIN repos r "
            "ON r.id = f.repo_id WHERE r.host_id = 'mcpotato/42-eicar-street'",
        )
    )
    siblings = records["mcpotato/42-eicar-street"]["siblings"]
    lfs = {s["rfilename"]: s["lfs"]["sha256"] for s in siblings if "lfs" in s}
    assert {p: h for p, h in eicar.items() if h} == lfs
    parents = rows(real_store, "SELECT parent_ref, relation, source FROM lineage")
    assert ("hf:HuggingFaceH4/zephyr-7b-beta", "adapter", "declared-file") in parents
    assert ("hf:mistralai/Mistral-7B-v0.1", "finetune", "declared-card") in parents

    server.visit = 1
    crawl(hf, real_store)
    status = dict(rows(real_store, "SELECT host_id, status FROM repos"))
    assert status["meta-llama/Llama-3.1-8B-Instruct"] == "taken_down"
    assert status["google-bert/bert-base-uncased"] == "live"
    kinds = {r[0] for r in rows(real_store, "SELECT DISTINCT kind FROM events")}
    assert {"appeared", "changed", "taken_down"} <= kinds
    gguf = rows(real_store, "SELECT status FROM files WHERE path = :p",
                p="zephyr-7b-beta.Q4_K_M.gguf")  # fmt: skip
    assert gguf == [("live",)]


def test_vanished_repos_are_marked_gone_and_renamed_in_the_index(
    server: ReplayServer, real_store: Store
) -> None:
    """After a complete pass the repos it did not list are checked: 404 and 307."""
    assert isinstance(real_store, SweepStore)
    hf = HuggingFaceHost(client("huggingface"), server.base("huggingface"))
    crawl(hf, real_store)
    server.visit = 1
    crawl(hf, real_store)
    status = dict(rows(real_store, "SELECT host_id, status FROM repos"))
    assert status["deepset/roberta-base-squad2"] == "gone"
    assert status["bert-base-uncased"] == "renamed"


def test_civitai_hashes_land_in_blobs_and_takedowns_in_events(
    server: ReplayServer, real_store: Store
) -> None:
    """Published hashes (CRC32 converted) go to blobs; TakenDown closes the files."""
    cv = CivitaiHost(client("civitai"), server.base("civitai"))
    crawl(cv, real_store)
    blob = rows(
        real_store,
        "SELECT autov2, crc32, blake3 FROM blobs WHERE sha256 = :s",
        s="7c0b4b21dad60ce4e5a3f78d33261f4e556f94042e7fd19fbc8c734a80ec5a81",
    )
    assert blob == [
        (
            "7c0b4b21da",
            f"{crc32_from_civitai('34BED093'):08x}",
            "9cf9f55aa6591f0993a471a0e4e2932e34f797ae213bf2847059a544f146e843",
        )
    ]
    versions = rows(real_store, "SELECT v.revision FROM versions v JOIN repos r "
                    "ON r.id = v.repo_id WHERE r.host_id = '1580878'")  # fmt: skip
    assert {v for (v,) in versions} == {"1967584", "1788945"}
    server.visit = 1
    crawl(cv, real_store)
    assert rows(real_store, "SELECT status FROM repos WHERE host_id = '43331'") == [
        ("taken_down",)
    ]
    live = rows(
        real_store,
        "SELECT count(*) FROM files f JOIN repos r ON r.id = f.repo_id "
        "WHERE r.host_id = '43331' AND f.status = 'live'",
    )
    assert live == [(0,)]
    assert rows(real_store, "SELECT revision FROM repos WHERE host_id = '4384'") == [
        ("999001",)
    ]


def test_replicate_models_with_run_counts_and_references(
    server: ReplayServer, real_store: Store
) -> None:
    """Run counts are downloads; HF links are unresolved parent references."""
    rp = ReplicateHost(client("replicate", token="r8_x"), server.base("replicate"))
    crawl(rp, real_store)
    got = dict(rows(real_store, "SELECT host_id, downloads FROM repos"))
    assert got["stability-ai/sdxl"] > 0
    refs = {r[0] for r in rows(real_store, "SELECT parent_ref FROM lineage "
                                "WHERE source = 'declared-description'")}  # fmt: skip
    assert "hf:TheBloke/Llama-2-7b-Chat-GPTQ" in refs


def test_second_crawl_of_a_host_is_refused_while_one_runs(
    server: ReplayServer, real_store: Store
) -> None:
    """The index's lock stops a concurrent crawl of the same host with a clear error."""
    from modelscan.errors import StoreError

    real_store.start_run("civitai", params={})
    cv = CivitaiHost(client("civitai"), server.base("civitai"))
    with pytest.raises(StoreError, match="another crawl of civitai"):
        crawl(cv, real_store)
    assert server.requests == []
