"""``modelscan crawl --deep``: the listed weights fingerprinted through HTTP Range.

The replayed Hub lists the real MiniLM safetensors (its true LFS sha256) in two
repos, and a file named like weights that is not one; ``/resolve/`` answers
Range requests from the bytes. A deep crawl must leave the same fingerprint a
remote read gives (structure, tensors, sketches), read the shared blob once,
skip the impostor, and not read anything again on the next run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from indexrows import query
from replay import ReplayServer

from modelscan.cli import cli
from modelscan.scanner.fingerprint import fingerprint

REPOS = ("modelscan-tests/minilm-reupload", "modelscan-tests/minilm-mirror")
SHA = "9c1b2c0e5d3a4f60718293a4b5c6d7e8f9a0b1c2"
IMPOSTOR = b"not weights at all, " * 4000


def _record(repo_id: str, files: dict[str, bytes]) -> dict[str, Any]:
    siblings: list[dict[str, Any]] = [{"rfilename": "README.md"}]
    for name, data in files.items():
        lfs = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
               "pointerSize": 134}  # fmt: skip
        siblings.append({"rfilename": name, "lfs": lfs})
    return {
        "_id": hashlib.sha256(repo_id.encode()).hexdigest()[:24], "id": repo_id,
        "modelId": repo_id, "author": repo_id.split("/")[0], "sha": SHA,
        "lastModified": "2025-03-01T00:00:00.000Z", "private": False,
        "gated": False, "disabled": False, "downloads": 1, "likes": 0,
        "tags": ["safetensors"], "siblings": siblings,
    }  # fmt: skip


@pytest.fixture
def world(tmp_path: Path, model_files: dict[str, Path]) -> Path:
    """A Hub of two repos holding MiniLM, one of them an impostor file too."""
    root = tmp_path / "hosts"
    weights = model_files["minilm"].read_bytes()
    for repo_id in REPOS:
        files = {"model.safetensors": weights}
        if repo_id == REPOS[0]:
            files["pytorch_model.bin"] = IMPOSTOR
        path = root / "huggingface" / "api" / "models" / f"{repo_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_record(repo_id, files)))
        for name, data in files.items():
            target = root / "huggingface" / repo_id / "resolve" / SHA / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return root


def test_deep_crawl_fingerprints_each_listed_blob_once(
    env: dict[str, str],
    server: ReplayServer,
    tmp_path: Path,
    model_files: dict[str, Path],
) -> None:
    """Structure, tensors and sketches from Range reads; shared blob read once."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = CliRunner().invoke(cli, ["crawl", "--host", "huggingface", "--deep",
                                      "--db", db, "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (hf,) = json.loads(result.stdout)["hosts"]
    assert (hf["deep_files"], hf["deep_skipped"], hf["errors"]) == (1, 1, 0)
    local = fingerprint(model_files["minilm"])
    sha = local.sha256
    (row,) = query(db, "SELECT format, structure_id, tensor_count, parameter_count "
                       f"FROM blobs WHERE sha256 = '{sha}'")  # fmt: skip
    assert row == ("safetensors", local.structure_id, len(local.tensors),
                   local.parameter_count)  # fmt: skip
    sketched = dict(query(db, "SELECT t.name, t.sketch FROM tensors t JOIN blobs b "
                              f"ON b.id = t.blob_id WHERE b.sha256 = '{sha}' "
                              "AND t.sketch IS NOT NULL"))  # fmt: skip
    by_name = {t.name: t.sketch for t in local.tensors}
    assert 0 < len(sketched) <= 32
    assert all(bytes(v) == by_name[k] for k, v in sketched.items())
    reads = server.count(rf"/huggingface/{REPOS[0]}/resolve/") + server.count(
        rf"/huggingface/{REPOS[1]}/resolve/.*model.safetensors"
    )
    assert reads <= 40 + 2  # one blob's budget, plus the impostor's first range
    assert hf["deep_bytes"] < 2 * 2**20
    again = CliRunner().invoke(cli, ["crawl", "--host", "huggingface", "--deep",
                                     "--db", db, "--json", "--full"])  # fmt: skip
    assert again.exit_code == 0, again.output
    (hf2,) = json.loads(again.stdout)["hosts"]
    assert hf2["deep_files"] == 0  # nothing left to read
