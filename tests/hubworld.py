"""A synthetic Hub world for the replay server: many repos, some adapters, some gated.

The records have the shape of the recorded ``/api/models`` entries (the server
derives their trees and LFS hashes from ``siblings``), so crawls of a few thousand
repos can be replayed without recording that many.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ADAPTER_EVERY = 40  # every 40th repo is a PEFT adapter; every other one of those gated


def _hex(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def write_world(root: Path, count: int) -> dict[str, dict[str, Any]]:
    """Write ``count`` Hub model records (and adapter configs) under ``root``."""
    models = root / "huggingface" / "api" / "models"
    records = {}
    for i in range(count):
        repo_id, sha = f"soak-org{i % 97}/model-{i:05d}", _hex(f"sha {i}", 40)
        siblings = [".gitattributes", "README.md", "config.json", "model.safetensors"]
        adapter = i % ADAPTER_EVERY == 0
        if adapter:
            siblings += ["adapter_config.json", "adapter_model.safetensors"]
        if i % 7 == 0:
            siblings.append(f"onnx/model-{i % 3}.onnx")
        record = {
            "_id": _hex(f"id {i}", 24), "id": repo_id, "modelId": repo_id,
            "author": repo_id.split("/")[0], "sha": sha,
            "lastModified": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T"
                            f"{i % 24:02d}:{i % 60:02d}:00.000Z",
            "createdAt": "2024-06-01T00:00:00.000Z", "private": False,
            "gated": "auto" if adapter and i % (2 * ADAPTER_EVERY) == 0 else False,
            "disabled": False, "downloads": i, "likes": i % 5, "tags": ["soak"],
            "siblings": [{"rfilename": name} for name in siblings],
        }  # fmt: skip
        path = models / f"{repo_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        if adapter:
            folder = root / "huggingface" / repo_id / "resolve" / sha
            folder.mkdir(parents=True)
            config = {"base_model_name_or_path": f"soak-org0/model-{i + 1:05d}"}
            (folder / "adapter_config.json").write_text(json.dumps(config))
        records[repo_id] = record
    return records


# --- a Hub holding real weights, for deep (remote) reads -------------------------

WEIGHT_REPOS = ("modelscan-tests/minilm-reupload", "modelscan-tests/minilm-mirror")
WEIGHTS_SHA = "9c1b2c0e5d3a4f60718293a4b5c6d7e8f9a0b1c2"
IMPOSTOR = b"not weights at all, " * 4000


def weights_record(
    repo_id: str,
    files: dict[str, bytes],
    *,
    created: str = "2025-03-01T00:00:00.000Z",
    modified: str = "2025-03-01T00:00:00.000Z",
    sha: str = WEIGHTS_SHA,
) -> dict[str, Any]:
    siblings: list[dict[str, Any]] = [{"rfilename": "README.md"}]
    for name, data in files.items():
        lfs = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
               "pointerSize": 134}  # fmt: skip
        siblings.append({"rfilename": name, "lfs": lfs})
    return {
        "_id": hashlib.sha256(repo_id.encode()).hexdigest()[:24], "id": repo_id,
        "modelId": repo_id, "author": repo_id.split("/")[0], "sha": sha,
        "lastModified": modified, "createdAt": created, "private": False,
        "gated": False, "disabled": False, "downloads": 1, "likes": 0,
        "tags": ["safetensors"], "siblings": siblings,
    }  # fmt: skip


def write_weight_repo(
    root: Path,
    repo_id: str,
    files: dict[str, bytes],
    *,
    author: str | None = None,
    created: str = "2025-03-01T00:00:00.000Z",
    modified: str | None = None,
    sha: str = WEIGHTS_SHA,
) -> None:
    """One Hub repo holding ``files``, its record and its ``/resolve/`` bytes.

    ``created`` is the repo's ``createdAt``; ``modified`` its ``lastModified``,
    which the replay server gives as every file's ``lastCommit`` date.
    """
    record = weights_record(
        repo_id, files, created=created, modified=modified or created, sha=sha
    )
    if author is not None:
        record["author"] = author
    path = root / "huggingface" / "api" / "models" / f"{repo_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    for name, data in files.items():
        target = root / "huggingface" / repo_id / "resolve" / sha / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def write_weights_world(root: Path, weights: bytes) -> None:
    """Two repos holding ``weights`` (the first also an impostor ``.bin``).

    The first is dated a day before the second, so it is the copies' origin
    whatever order a crawl saves them in (a tie would fall to first sighting,
    which two workers of a distributed crawl reach in either order).
    """
    for day, repo_id in enumerate(WEIGHT_REPOS, start=1):
        files = {"model.safetensors": weights}
        if repo_id == WEIGHT_REPOS[0]:
            files["pytorch_model.bin"] = IMPOSTOR
        write_weight_repo(
            root, repo_id, files, created=f"2025-03-0{day}T00:00:00.000Z"
        )
