"""``modelscan crawl --deep``: the listed weights fingerprinted through HTTP Range.

The replayed Hub lists the real MiniLM safetensors (its true LFS sha256) in two
repos, and a file named like weights that is not one; ``/resolve/`` answers
Range requests from the bytes. A deep crawl must leave the same fingerprint a
remote read gives (structure, tensors, sketches), read the shared blob once,
skip the impostor, and not read anything again on the next run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hubworld import WEIGHT_REPOS, write_weights_world
from indexrows import query
from replay import ReplayServer

from modelscan.cli import cli
from modelscan.scanner.fingerprint import fingerprint


@pytest.fixture
def world(tmp_path: Path, model_files: dict[str, Path]) -> Path:
    """A Hub of two repos holding MiniLM, one of them an impostor file too."""
    root = tmp_path / "hosts"
    write_weights_world(root, model_files["minilm"].read_bytes())
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
    reads = server.count(rf"/huggingface/{WEIGHT_REPOS[0]}/resolve/") + server.count(
        rf"/huggingface/{WEIGHT_REPOS[1]}/resolve/.*model.safetensors"
    )
    assert reads <= 40 + 2  # one blob's budget, plus the impostor's first range
    assert hf["deep_bytes"] < 2 * 2**20
    again = CliRunner().invoke(cli, ["crawl", "--host", "huggingface", "--deep",
                                     "--db", db, "--json", "--full"])  # fmt: skip
    assert again.exit_code == 0, again.output
    (hf2,) = json.loads(again.stdout)["hosts"]
    assert hf2["deep_files"] == 0  # nothing left to read
