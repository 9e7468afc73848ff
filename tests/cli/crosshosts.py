"""A world for cross-host tests: recorded Ollama, ModelScope and Civitai answers.

Beside them, Hugging Face repos hold the same files (sha256 and size as the
hosts state them).

The Hugging Face records are derived (no recording holds these files on the Hub);
the hashes are real: gemma:2b's model layer (the recorded manifest),
all-MiniLM-L6-v2's model.safetensors (known_hashes.md), DreamShaper's file on the
recorded Civitai page.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from replay import DATA

GEMMA_GGUF = "c1864a5eb19305c40519da12cc543519e48a0697ecd30e15d5ac228644957d12"
MINILM_SHA = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DREAMSHAPER = "879db523c30d3b9017143d56705015e15a2cb5628762c11d086fed9538abd7fd"
HF_FILES = {
    "lmstudio-community/gemma-2b-GGUF": ("gemma-2b.gguf", GEMMA_GGUF, 1678447520),
    "sentence-transformers/all-MiniLM-L6-v2": (
        "model.safetensors",
        MINILM_SHA,
        90868376,
    ),
    "someone/dreamshaper-reupload": (
        "dreamshaper_8.safetensors",
        DREAMSHAPER,
        2132625894,
    ),
}


def hf_record(repo_id: str, path: str, sha: str, size: int) -> dict[str, Any]:
    """A model_info record holding one LFS file (and a README)."""
    lfs = {"sha256": sha, "size": size, "pointerSize": 134}
    return {
        "_id": hashlib.sha256(repo_id.encode()).hexdigest()[:24], "id": repo_id,
        "modelId": repo_id, "author": repo_id.split("/")[0],
        "sha": hashlib.sha1(repo_id.encode()).hexdigest(),
        "lastModified": "2025-03-01T00:00:00.000Z", "private": False,
        "gated": False, "disabled": False, "downloads": 10, "likes": 1,
        "tags": ["gguf" if path.endswith(".gguf") else "safetensors"],
        "siblings": [{"rfilename": "README.md"}, {"rfilename": path, "lfs": lfs}],
    }  # fmt: skip


def write_world(root: Path) -> Path:
    """The world under ``root``: recorded hosts linked, the Hub repos written."""
    root.mkdir(parents=True, exist_ok=True)
    for host in ("ollama", "modelscope", "civitai"):
        (root / host).symlink_to(DATA / host, target_is_directory=True)
    models = root / "huggingface" / "api" / "models"
    for repo_id, (path, sha, size) in HF_FILES.items():
        target = models / f"{repo_id}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(hf_record(repo_id, path, sha, size)))
    return root
