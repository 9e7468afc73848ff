"""End to end: crawl a replayed world, fingerprint, link, then ask spread and lineage.

The world (served by tests/replay.py from files written here): the real
all-MiniLM-L6-v2 weights, published on Hugging Face under the real record of
sentence-transformers/all-MiniLM-L6-v2, re-uploaded to three repos on two hosts
(alice on the Hub, bob and carol on Civitai), converted once (the same tensors
re-saved with torch.save: same content_id, other sha256), fine-tuned once (the
real weights plus noise, fingerprinted, so the sketch correlation is genuine)
and quantized once (a GGUF repo whose card declares it). The second visit
serves carol's Civitai model as taken down.

Set MODELSCAN_WRITE_DOCS=1 to also write docs/spread.png (the README picture).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import statistics
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from replay import DATA, ReplayServer

from modelscan.cli import cli
from modelscan.db.engine import open_store
from modelscan.lineage.spread import JSON_KEYS
from modelscan.records import Fingerprint
from modelscan.registry.base import crawl
from modelscan.registry.civitai import CivitaiHost
from modelscan.registry.http import HttpClient
from modelscan.registry.huggingface import HuggingFaceHost
from modelscan.scanner.fingerprint import fingerprint
from modelscan.scanner.similarity import correlation

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL = "sentence-transformers/all-MiniLM-L6-v2"
T0 = datetime(2025, 3, 10, tzinfo=UTC)  # first visit of the Hub
T_CIVITAI = T0 + timedelta(days=3)  # first visit of Civitai
T1 = T0 + timedelta(days=45)  # second visit of both
WEIGHT_SUFFIXES = (".bin", ".h5", ".ot", ".onnx", ".xml", ".msgpack", ".safetensors")
HF_DOWNLOADS = {
    "alice/minilm-reupload": 12,
    "dave/all-MiniLM-L6-v2-bin": 3,
    "erin/minilm-finetuned": 5,
    "frank/all-MiniLM-L6-v2-gguf": 8,
}
CIVITAI = {7001: ("bob", 40), 7002: ("carol", 9)}  # id: (owner, downloads)


@pytest.fixture(autouse=True)
def _no_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own tokens and endpoints are never used."""
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_ENDPOINT",
        "CIVITAI_API_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")


# --- the world ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(
    model_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The original weights, their torch.save conversion and a noisy fine-tune."""
    import torch
    from safetensors.numpy import load_file, save_file

    root = tmp_path_factory.mktemp("minilm")
    original = root / "original" / "model.safetensors"
    original.parent.mkdir()
    shutil.copyfile(model_files["minilm"], original)
    tensors = load_file(original)
    converted = root / "converted" / "pytorch_model.bin"
    converted.parent.mkdir()
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, converted)
    rng = np.random.default_rng(2025)
    tuned = {
        k: (v + 0.2 * v.std() * rng.standard_normal(v.shape)).astype(v.dtype)
        if v.dtype == np.float32 and v.ndim > 1
        else v
        for k, v in tensors.items()
    }
    finetuned = root / "finetuned" / "model.safetensors"
    finetuned.parent.mkdir()
    save_file(tuned, str(finetuned), metadata={"format": "pt"})
    return {"original": original, "converted": converted, "finetuned": finetuned}


@pytest.fixture(scope="module")
def prints(files: dict[str, Path]) -> dict[str, Fingerprint]:
    """Fingerprints of the world's files (for expected values only)."""
    return {k: fingerprint(p) for k, p in files.items()}


def _lfs(fp: Fingerprint) -> dict[str, Any]:
    return {"sha256": fp.sha256, "size": fp.size, "pointerSize": 134}


def _hf_record(repo: str, sibling: dict[str, Any], **extra: Any) -> dict[str, Any]:
    owner = repo.split("/")[0]
    return {
        "_id": repo.replace("/", "-"),
        "id": repo,
        "modelId": repo,
        "author": owner,
        "sha": f"{abs(hash(repo)) % 16**40:040x}",
        # after the original's last commit (2025-03-06): these are re-uploads
        "lastModified": "2025-03-08T00:00:00.000Z",
        "createdAt": "2025-03-08T00:00:00.000Z",
        "private": False,
        "gated": False,
        "disabled": False,
        "tags": extra.pop("tags", []),
        "downloads": HF_DOWNLOADS[repo],
        "likes": 0,
        "siblings": [sibling],
        **extra,
    }


def _civitai_item(
    model_id: int, fp: Fingerprint, *, taken_down: bool
) -> dict[str, Any]:
    owner, downloads = CIVITAI[model_id]
    return {
        "id": model_id,
        "name": f"MiniLM re-upload {model_id}",
        "type": "Checkpoint",
        "mode": "TakenDown" if taken_down else None,
        "creator": {"username": owner},
        "stats": {"downloadCount": downloads, "thumbsUpCount": 0},
        "modelVersions": [
            {
                "id": model_id * 10,
                "name": "v1",
                "baseModel": "Other",
                "publishedAt": "2025-03-09T00:00:00.000Z",
                "files": [
                    {
                        "id": model_id * 100,
                        "name": "model.safetensors",
                        "sizeKB": fp.size / 1024,
                        "type": "Model",
                        "hashes": {
                            "SHA256": fp.sha256.upper(),
                            "AutoV2": fp.autov2.upper(),
                        },
                        "downloadUrl": f"https://civitai.com/api/download/models/{model_id}",
                    }
                ],
            }
        ],
    }


def write_world(root: Path, prints: dict[str, Fingerprint]) -> None:
    """Write the world in the replay server's layout (second visit: ``_visit1``)."""
    models = root / "huggingface" / "api" / "models"
    real = json.loads(
        (DATA / "huggingface/api/models" / f"{ORIGINAL}.json").read_text()
    )
    record = copy.deepcopy(real)  # the real record; only its weights are pinned
    record["siblings"] = [
        s for s in real["siblings"] if not s["rfilename"].endswith(WEIGHT_SUFFIXES)
    ]
    record["siblings"].append(
        {"rfilename": "model.safetensors", "lfs": _lfs(prints["original"])}
    )
    quantized = "frank/all-MiniLM-L6-v2-gguf"
    records = [
        record,
        _hf_record(
            "alice/minilm-reupload",
            {"rfilename": "model.safetensors", "lfs": _lfs(prints["original"])},
        ),
        _hf_record(
            "dave/all-MiniLM-L6-v2-bin",
            {"rfilename": "pytorch_model.bin", "lfs": _lfs(prints["converted"])},
        ),
        _hf_record(
            "erin/minilm-finetuned",
            {"rfilename": "model.safetensors", "lfs": _lfs(prints["finetuned"])},
        ),
        _hf_record(
            quantized,
            {"rfilename": "all-MiniLM-L6-v2-Q8_0.gguf"},
            cardData={"base_model": ORIGINAL, "base_model_relation": "quantized"},
            tags=[f"base_model:quantized:{ORIGINAL}"],
        ),
    ]
    for rec in records:
        path = models / f"{rec['id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
    civitai = root / "civitai" / "api" / "v1"
    civitai.mkdir(parents=True)
    for name, down in (("models.json", False), ("models_visit1.json", True)):
        items = [
            _civitai_item(7001, prints["original"], taken_down=False),
            _civitai_item(7002, prints["original"], taken_down=down),
        ]
        (civitai / name).write_text(json.dumps({"items": items, "metadata": {}}))


def _client(name: str) -> HttpClient:
    return HttpClient(name, sleep=lambda s: None)


def run(*args: str) -> Result:
    """Invoke the real command group."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _crawl_both(
    server: ReplayServer, url: str, hf_at: datetime, cv_at: datetime
) -> None:
    with open_store(url) as store:
        hf = HuggingFaceHost(_client("huggingface"), server.base("huggingface"))
        crawl(hf, store, clock=lambda: hf_at)
        cv = CivitaiHost(_client("civitai"), server.base("civitai"))
        crawl(cv, store, clock=lambda: cv_at)


@pytest.fixture
def crawled(
    db_url: str, files: dict[str, Path], prints: dict[str, Fingerprint], tmp_path: Path
) -> str:
    """Two visits crawled, the local copies fingerprinted (--save), linked; the URL."""
    write_world(tmp_path / "hosts", prints)
    with ReplayServer(tmp_path / "hosts") as server:
        _crawl_both(server, db_url, T0, T_CIVITAI)
        saved = run("fingerprint", "--save", "--db", db_url, *map(str, files.values()))
        assert saved.exit_code == 0, saved.output
        assert run("link", "--db", db_url).exit_code == 0
        server.visit = 1
        _crawl_both(server, db_url, T1, T1)
    assert run("link", "--db", db_url).exit_code == 0
    return db_url


def expected_median(child: Fingerprint, parent: Fingerprint) -> float:
    """Median sketch correlation over the matrices that count (not embeddings)."""
    theirs = {t.name: t.sketch for t in parent.tensors}
    rs = [
        correlation(t.sketch, theirs[t.name])
        for t in child.tensors
        if t.sketch and len(t.shape) >= 2 and "embed" not in t.name
    ]
    return statistics.median(r for r in rs if r is not None)


# --- the proofs -----------------------------------------------------------------------


def test_spread_reports_the_worlds_copies(
    crawled: str, prints: dict[str, Fingerprint]
) -> None:
    """Exact copies, the conversion, derivatives, takedown cost and survival."""
    by_hash = json.loads(
        run("spread", prints["original"].sha256, "--json", "--db", crawled).output
    )
    real = json.loads(
        (DATA / "huggingface/api/models" / f"{ORIGINAL}.json").read_text()
    )
    hub = (
        real["downloads"]
        + HF_DOWNLOADS["alice/minilm-reupload"]
        + HF_DOWNLOADS["dave/all-MiniLM-L6-v2-bin"]
    )
    holders = hub + sum(d for _, d in CIVITAI.values())
    # the original's files are dated by its record's last commit (the replay
    # server's lastCommit), the re-uploads after it: five copies in one window
    published = datetime.fromisoformat(real["lastModified"].replace("Z", "+00:00"))
    assert by_hash == {
        "exact_copies": 4,  # the original and three re-uploads
        "live_copies": 4,  # carol's went; the conversion is a live copy of the weights
        "content_copies": 1,
        "derivatives": {"finetune": 1, "quantized": 1},
        "hosts": 2,
        "owners": 5,
        "downloads": holders,
        "downloads_last_30_days": hub,
        "downloads_all_time": sum(d for _, d in CIVITAI.values()),  # Civitai's own
        "first_published_per_host": {
            "huggingface": published.isoformat(),
            "civitai": "2025-03-09T00:00:00+00:00",
        },
        "first_seen_per_host": {
            "huggingface": T0.isoformat(),
            "civitai": T_CIVITAI.isoformat(),
        },
        "added_per_30_days": [
            {
                "start": published.isoformat(),
                "added": 5,
                "dated_by": {"published_at": 5},
            }
        ],
        "growth_dated_by": {"published_at": 5, "first_seen": 0},
        "takedown_cost": 4,  # sentence-transformers, alice, dave, bob
        "jurisdictions": {"US": 4},
        "operators": {"Hugging Face, Inc.": 3, "Civitai, Inc.": 1},
        "survival": {"gone": 1, "survived": 1, "rate": 1.0},
    }
    assert tuple(by_hash) == JSON_KEYS
    by_repo = json.loads(
        run("spread", f"hf:{ORIGINAL}", "--json", "--db", crawled).output
    )
    assert by_repo == by_hash


def test_lineage_reports_the_worlds_edges(
    crawled: str, prints: dict[str, Fingerprint]
) -> None:
    """Every edge with relation, source and confidence; the fine-tune's r is real."""
    doc = json.loads(
        run("lineage", f"hf:{ORIGINAL}", "--format", "json", "--db", crawled).output
    )
    labels = {n["key"]: n["label"] for n in doc["nodes"]}
    edges = {
        (labels[e["child"]], labels[e["parent"]], e["relation"], e["source"]): e[
            "confidence"
        ]
        for e in doc["edges"]
    }
    original = f"hf:{ORIGINAL}"
    r = expected_median(prints["finetuned"], prints["original"])
    assert edges == pytest.approx(
        {
            ("hf:alice/minilm-reupload", original, "copy", "identical-hash"): 1.0,
            ("civitai:7001", original, "copy", "identical-hash"): 1.0,
            ("civitai:7002", original, "copy", "identical-hash"): 1.0,
            (
                "hf:dave/all-MiniLM-L6-v2-bin",
                original,
                "conversion",
                "same-content",
            ): 1.0,
            ("hf:erin/minilm-finetuned", original, "finetune", "weight-similarity"): r,
            (
                "hf:frank/all-MiniLM-L6-v2-gguf",
                original,
                "quantized",
                "declared-card",
            ): None,
        },
        abs=1e-4,
    )
    assert 0.9 < r < 1.0
    text = run("lineage", f"hf:{ORIGINAL}", "--db", crawled).output
    assert "civitai:7002 (carol, taken_down)  [copy, identical-hash, 1.00]" in text
    ft = run("lineage", "hf:erin/minilm-finetuned", "--check", "--db", crawled).output
    assert (
        f"└── {original} (sentence-transformers, live)  [finetune, weight-similarity, "
        f"{r:.2f}]" in ft
    )
    assert "check:" not in ft


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_spread_plot_of_the_world(crawled: str, tmp_path: Path, db_url: str) -> None:
    """The world's live copies per host render to a real 800x450 PNG."""
    out = tmp_path / "spread.png"
    result = run("spread", f"hf:{ORIGINAL}", "--plot", str(out), "--db", crawled)
    assert result.exit_code == 0, result.output
    assert png_size(out) == (800, 450)
    if os.environ.get("MODELSCAN_WRITE_DOCS") and db_url.startswith("sqlite"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(out, ROOT / "docs" / "spread.png")


def test_declared_lineage_of_recorded_hub_records(db_url: str) -> None:
    """The base models that real Hub cards declare appear in `modelscan lineage`."""
    with ReplayServer() as server, open_store(db_url) as store:
        crawl(
            HuggingFaceHost(_client("huggingface"), server.base("huggingface")),
            store,
            clock=lambda: T0,
        )
        records = server.hf_records()
    assert run("link", "--db", db_url).exit_code == 0
    declared = 0
    for repo, rec in records.items():
        card = rec.get("cardData") or {}
        bases = card.get("base_model") or []
        bases = [bases] if isinstance(bases, str) else bases
        tagged = {
            t.split(":")[-1]: t.split(":")[1]
            for t in rec.get("tags", [])
            if t.startswith("base_model:") and t.count(":") == 2
        }
        doc = json.loads(
            run("lineage", f"hf:{repo}", "--format", "json", "--db", db_url).output
        )
        got = {
            (e["parent_ref"], e["source"])
            for e in doc["edges"]
            if doc["nodes"] and e["child"] in doc["subject"]["roots"]
        }
        want = {(f"hf:{b}", "declared-card") for b in bases}
        want |= {(f"hf:{p}", "declared-tag") for p in tagged if p not in bases}
        assert want <= got, repo
        declared += len(want)
    assert declared >= 5  # zephyr, roberta, llama and the rest of the recorded cards
    tree = run("lineage", "hf:HuggingFaceH4/zephyr-7b-beta", "--db", db_url).output
    assert (
        "└── hf:mistralai/Mistral-7B-v0.1 (not in the index)  [finetune, declared-card]"
        in tree
    )
    assert "└── hf:modelscan-tests/zephyr-7b-lora" in tree  # its adapter, crawled too
