"""A replayed world for the report tests: real weights on two hosts over two years.

Real safetensors files (written by the real library, from
``tests/db/lineage_world.py``'s tensors) are listed by a replayed Hub and a
replayed Civitai, with the hosts' own dates spread from 2023 to 2025:

- ``org/base`` (2023-03) holds ``base``; ``mirror/base`` (2024-01) and
  Civitai model 7001 (2024-09, owner bob) re-upload the same bytes;
- ``tuner/ft`` (2024-06) holds ``base`` plus noise, its card declaring
  ``org/base`` as base model;
- ``evil/copy`` (2025-02) re-uploads ``base`` under a hostile author and
  declared base model (markup that must never run or render);
- ``other/unrelated`` (2023-05) holds unrelated weights of the same shapes;
- ``liar/ft`` (2024-11) declares a fine-tune of ``org/base`` but holds other
  unrelated weights (the contradiction ``lineage --check`` must find).

The Hub serves every file's bytes on ``/resolve/``, so ``crawl --deep`` reads
their sketches and ``link`` can measure weight similarity.

:func:`add_hostile_repo` then saves, through the Store API, a repo named
``<script>alert(1)</script>`` holding ``base`` in a file with a hostile name
(the Hub would refuse such an id, so no crawl can bring one in; an index from
elsewhere might hold one).
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "db"))
import lineage_world  # noqa: E402

from modelscan.cli import cli  # noqa: E402
from modelscan.db.store import Store  # noqa: E402
from modelscan.records import Listing, RemoteFile  # noqa: E402

HOSTILE = "<script>alert(1)</script>"
HOSTILE_AUTHOR = '<img src=x onerror="alert(2)">'
HOSTILE_FILE = "<b onmouseover=alert(3)>model.safetensors"
HOSTILE_BASE = "<svg onload=alert(4)>"
SUBJECT = "hf:org/base"
HF_REPOS = {  # repo id -> (file key, lastModified, author, declared base, downloads)
    "org/base": ("base", "2023-03-14T10:00:00.000Z", "org", None, 5000),
    "other/unrelated": ("other", "2023-05-02T10:00:00.000Z", "other", None, 70),
    "mirror/base": ("base", "2024-01-20T10:00:00.000Z", "mirror", None, 300),
    "tuner/ft": ("ft", "2024-06-11T10:00:00.000Z", "tuner", "org/base", 120),
    "liar/ft": ("fresh", "2024-11-20T10:00:00.000Z", "liar", "org/base", 9),
    "evil/copy": ("base", "2025-02-03T10:00:00.000Z", HOSTILE_AUTHOR, HOSTILE_BASE, 2),
}
CIVITAI_PUBLISHED = "2024-09-05T12:00:00.000"


def write_weights(root: Path) -> dict[str, bytes]:
    """Write the world's real safetensors files; return their bytes by key."""
    root.mkdir(parents=True, exist_ok=True)
    base = lineage_world.base_tensors(1)
    tensors = {
        "base": base,
        "ft": lineage_world.noisy(base, 10, 0.05),
        "other": lineage_world.base_tensors(2),
        "fresh": lineage_world.base_tensors(3),
    }
    out = {}
    for key, values in tensors.items():
        path = root / f"{key}.safetensors"
        save_file(values, str(path))
        out[key] = path.read_bytes()
    return out


def _hf_record(
    repo_id: str, data: bytes, when: str, author: str, downloads: int
) -> dict[str, Any]:
    name = "model.safetensors"
    lfs = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
           "pointerSize": 134}  # fmt: skip
    return {
        "_id": hashlib.sha256(repo_id.encode()).hexdigest()[:24], "id": repo_id,
        "modelId": repo_id, "author": author,
        "sha": hashlib.sha1(repo_id.encode()).hexdigest(),
        "lastModified": when, "createdAt": when, "private": False, "gated": False,
        "disabled": False, "downloads": downloads, "likes": 0,
        "tags": ["safetensors"],
        "siblings": [{"rfilename": "README.md"}, {"rfilename": name, "lfs": lfs}],
    }  # fmt: skip


def _civitai_page(data: bytes) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest().upper()
    version = {
        "id": 70010, "name": "v1", "modelId": 7001, "baseModel": "SD 1.5",
        "publishedAt": CIVITAI_PUBLISHED, "createdAt": CIVITAI_PUBLISHED,
        "availability": "Public", "stats": {"downloadCount": 40},
        "files": [{"id": 700100, "sizeKB": len(data) / 1024,
                   "name": "base.safetensors", "type": "Model",
                   "hashes": {"SHA256": sha, "AutoV2": sha[:10]},
                   "downloadUrl": "https://civitai.com/api/download/models/70010",
                   "primary": True}],
    }  # fmt: skip
    model = {
        "id": 7001, "name": "base re-upload", "type": "Checkpoint", "nsfw": False,
        "stats": {"downloadCount": 40}, "creator": {"username": "bob"},
        "tags": [], "modelVersions": [version],
    }  # fmt: skip
    return {"items": [model], "metadata": {"pageSize": 100}}


def write_world(root: Path) -> dict[str, bytes]:
    """Write the replayed hosts under ``root``; return the weights by key."""
    weights = write_weights(root / "files")
    models = root / "huggingface" / "api" / "models"
    for repo_id, (key, when, author, declared, downloads) in HF_REPOS.items():
        record = _hf_record(repo_id, weights[key], when, author, downloads)
        if declared is not None:
            record["cardData"] = {"base_model": declared,
                                  "base_model_relation": "finetune"}  # fmt: skip
        path = models / f"{repo_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        target = root / "huggingface" / repo_id / "resolve" / record["sha"]
        target.mkdir(parents=True, exist_ok=True)
        (target / "model.safetensors").write_bytes(weights[key])
    page = root / "civitai" / "api" / "v1" / "models.json"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(json.dumps(_civitai_page(weights["base"])))
    return weights


def add_hostile_repo(store: Store, data: bytes) -> None:
    """Save a Hub repo named ``<script>alert(1)</script>`` holding ``data``."""
    sha = hashlib.sha256(data).hexdigest()
    url = "javascript:alert(5)"  # a listed URL that must never become a link
    listing = Listing(
        host="huggingface",
        host_id=HOSTILE,
        name="script>",
        owner=HOSTILE_AUTHOR,
        url=url,
        revision="r1",
        updated_at=None,
        status="live",
        downloads=3,
        files=(RemoteFile(path=HOSTILE_FILE, size=len(data), sha256=sha, url=url),),
    )
    lineage_world.save(store, "huggingface", [listing], datetime.now(UTC))


def run(*args: str) -> str:
    """Invoke the real command group; fail the test on a non-zero exit."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout
