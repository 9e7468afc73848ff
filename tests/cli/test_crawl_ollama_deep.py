"""``crawl --host ollama --deep``: the model layer read by Range through its redirect.

The world holds one tag whose model layer is a real GGUF written by the ``gguf``
package; its blob URL answers 307 to ``/ollama/cdn/...`` (as the registry sends
blobs to Cloudflare R2), which answers Range requests from the bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from indexrows import query
from replay import ReplayServer

from modelscan.cli import cli
from modelscan.scanner.fingerprint import fingerprint

MT = "application/vnd.docker.distribution.manifest.v2+json"


def write_gguf(path: Path) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("modelscan-tests tiny")
    rng = np.random.default_rng(13)
    for i in range(3):
        writer.add_tensor(f"blk.{i}.attn_q.weight",
                          rng.standard_normal((64, 64)).astype(np.float32))  # fmt: skip
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """One Ollama tag, library/tiny:1, whose model layer is a real GGUF."""
    root = tmp_path / "hosts"
    gguf_path = tmp_path / "tiny.gguf"
    write_gguf(gguf_path)
    data = gguf_path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MT, "layers": [
        {"mediaType": "application/vnd.ollama.image.model",
         "digest": f"sha256:{sha}", "size": len(data)}]}).encode()  # fmt: skip
    tag = root / "ollama" / "v2" / "library" / "tiny" / "manifests"
    tag.mkdir(parents=True)
    (tag / "1.json").write_bytes(manifest)
    blob = root / "ollama" / "v2" / "library" / "tiny" / "blobs"
    blob.mkdir(parents=True)
    redirect = {"status": 307, "headers": {"Location": f"/cdn/blobs/{sha}/data"}}
    (blob / f"sha256:{sha}.meta.json").write_text(json.dumps(redirect))
    cdn = root / "ollama" / "cdn" / "blobs" / sha
    cdn.mkdir(parents=True)
    (cdn / "data").write_bytes(data)
    return root


def test_deep_reads_the_gguf_header_through_the_blob_redirect(
    env: dict[str, str], server: ReplayServer, tmp_path: Path, world: Path
) -> None:
    """The layer's structure and tensors come from a few Range reads at the CDN."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    args = ["--model", "tiny:1", "--deep", "--db", db, "--json"]
    result = CliRunner().invoke(cli, ["crawl", "--host", "ollama", *args])
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)["hosts"]
    assert (summary["deep_files"], summary["errors"]) == (1, 0)
    local = fingerprint(tmp_path / "tiny.gguf")
    (row,) = query(db, "SELECT format, structure_id, tensor_count FROM blobs "
                       f"WHERE sha256 = '{local.sha256}'")  # fmt: skip
    assert row == ("gguf", local.structure_id, 3)
    assert server.count(r"/ollama/v2/library/tiny/blobs/sha256:") >= 1
    assert server.count(r"/ollama/cdn/blobs/") >= 1
