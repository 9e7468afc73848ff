"""From listed hashes to undeclared lineage: ``crawl --deep``, then ``link``.

A replayed Hub lists the real MiniLM safetensors (in two repos) and, in repos of
their own that declare nothing, the weights converted by the real libraries (torch
zip, GGUF F32, a float16 cast, a Q8_0 GGUF), a noisy fine-tune and a shuffled,
unrelated copy. The base's repos are crawled first (uploaded first), then the rest.
Only HTTP Range reads see the weights; ``modelscan link`` must then name each
derivative's relation to the base from the remote sketches, give the unrelated
copy no edge, and the blob held by two repos must have been read once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hubworld import write_weight_repo
from indexrows import query
from rangeserver import minilm_conversions, minilm_derivatives
from replay import ReplayServer

from modelscan.cli import cli

EXPECTED = {  # child repo -> (relation, source) to the base
    "o/minilm_torch_zip": ("conversion", "same-weights"),
    "o/minilm_gguf_f32": ("conversion", "same-weights"),
    "o/minilm_f16": ("conversion", "weight-similarity"),
    "o/minilm_gguf_q8_0": ("quantized", "weight-similarity"),
    "o/minilm_noisy": ("finetune", "weight-similarity"),
}


@pytest.fixture
def world(tmp_path: Path, model_files: dict[str, Path]) -> Path:
    """The base in o/minilm and o/minilm-mirror; each derivative in its repo."""
    files = {
        "o/minilm": model_files["minilm"],
        "o/minilm-mirror": model_files["minilm"],
    }
    made = minilm_conversions(model_files["minilm"], tmp_path / "made")
    made.update(minilm_derivatives(model_files["minilm"], tmp_path / "made"))
    for key, path in made.items():
        if key != "minilm_torch_legacy":
            files[f"o/{key}"] = path
    root = tmp_path / "hosts"
    for repo_id, path in files.items():
        base = path == model_files["minilm"]
        author = "original" if base else "uploader-" + repo_id[-6:]
        write_weight_repo(root, repo_id, {path.name: path.read_bytes()}, author=author)
    return root


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_deep_crawl_then_link_finds_every_undeclared_relation(
    env: dict[str, str],
    server: ReplayServer,
    tmp_path: Path,
    model_files: dict[str, Path],
) -> None:
    """Each derivative gets its relation to the base; the unrelated copy none."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    minilm = model_files["minilm"]
    first = json.loads(run("crawl", "--host", "huggingface", "--author", "original",
                           "--deep", "--db", db, "--json"))  # fmt: skip
    assert first["hosts"][0]["deep_files"] == 1  # two repos, one blob
    rest = json.loads(run("crawl", "--host", "huggingface", "--deep", "--db", db,
                          "--json"))  # fmt: skip
    assert rest["hosts"][0]["deep_files"] == len(EXPECTED) + 1  # and the shuffled one
    base_reads = server.count(r"/o/minilm(-mirror)?/resolve/")
    assert 0 < base_reads <= 40  # the blob two repos hold: one read, one budget
    run("link", "--db", db)
    edges = query(
        db,
        "SELECT c.host_id, l.parent_ref, l.relation, l.source FROM lineage l "
        "JOIN repos c ON c.id = l.child_repo_id "
        "WHERE l.source IN ('same-weights', 'weight-similarity')",
    )
    base = f"sha256:{hashlib.sha256(minilm.read_bytes()).hexdigest()}"
    found = {child: (rel, src) for child, parent, rel, src in edges
             if parent == base and child.startswith("o/minilm_")}  # fmt: skip
    assert found == EXPECTED
    assert not [e for e in edges if "shuffled" in e[0]]
