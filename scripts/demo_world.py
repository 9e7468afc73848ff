"""Serve the demo world: recorded host responses plus a real model's re-uploads.

``scripts/demo.sh`` runs this in the background. It copies the recorded host
responses of ``tests/data/hosts`` (Hugging Face, Civitai, Replicate, ModelScope,
whose recorded listing mirrors the same MiniLM file in China), adds the
real ``sentence-transformers/all-MiniLM-L6-v2`` safetensors file (fetched by
``tests/fetch_models.py``, its sha256 the one the Hub publishes) in its own repo
and in repos that re-upload, convert, quantize or fine-tune it over four years,
plus one Civitai re-upload, and serves it all with the tests' replay server on
127.0.0.1. It writes the environment that points modelscan at the server to
``ENV_FILE`` and serves until it is killed.

The derivatives are made here with numpy, safetensors and gguf (no torch), so
the demo needs nothing beyond modelscan's own dependencies. Their dates are
the demo's, not the real repos'.

Usage:
    python scripts/demo_world.py MODEL.safetensors WORLD_DIR ENV_FILE
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hubworld import write_weight_repo  # noqa: E402
from rangeserver import minilm_derivatives, write_gguf  # noqa: E402
from replay import DATA, ReplayServer  # noqa: E402

BASE_REPO = "sentence-transformers/all-MiniLM-L6-v2"
# repo -> (file name, which bytes, the day its upload was committed)
REPOS: dict[str, tuple[str, str, str]] = {
    BASE_REPO: ("model.safetensors", "base", "2021-08-30"),
    "backup-user/all-MiniLM-L6-v2": ("model.safetensors", "base", "2022-05-27"),
    "edge-team/minilm-fp16": ("model.fp16.safetensors", "f16", "2023-02-14"),
    "gguf-maker/all-MiniLM-L6-v2-GGUF": ("minilm-f32.gguf", "gguf_f32", "2024-01-08"),
    "quant-lab/all-MiniLM-L6-v2-Q8_0": ("minilm-q8_0.gguf", "gguf_q8_0", "2024-03-02"),
    "tuner/minilm-support-tickets": ("model.safetensors", "noisy", "2024-09-19"),
    "mirror-archive/all-MiniLM-L6-v2": ("model.safetensors", "base", "2025-06-10"),
    "random/shuffled-minilm": ("model.safetensors", "shuffled", "2025-04-01"),
}
CIVITAI_ID, CIVITAI_VERSION = 990001, 990002


def build(model: Path, world: Path) -> None:
    """Write the demo world under ``world``."""
    if world.exists():
        shutil.rmtree(world)
    shutil.copytree(DATA, world)
    made = world.parent / f"{world.name}-made"
    made.mkdir(parents=True, exist_ok=True)
    files = _derivatives(model, made)
    files["base"] = model
    for repo_id, (name, key, day) in REPOS.items():
        author = repo_id.split("/")[0]
        data = files[key].read_bytes()
        date = f"{day}T00:00:00.000Z"
        write_weight_repo(world, repo_id, {name: data}, author=author, created=date)
    _civitai_copy(world, model)


def _derivatives(model: Path, folder: Path) -> dict[str, Path]:
    import numpy as np
    from safetensors.numpy import load_file, save_file

    out = minilm_derivatives(model, folder)  # a noisy fine-tune, a shuffled copy
    weights = load_file(str(model))
    f16 = folder / "model.fp16.safetensors"
    save_file({k: v.astype(np.float16) for k, v in weights.items()}, str(f16))
    out["minilm_f16"] = f16
    for key, quantized in (("gguf_f32", False), ("gguf_q8_0", True)):
        path = folder / f"minilm-{key[5:]}.gguf"
        write_gguf(path, dict(weights), quantized=quantized)
        out[key] = path
    return {
        "noisy": out["minilm_noisy"],
        "shuffled": out["minilm_shuffled"],
        "f16": out["minilm_f16"],
        "gguf_f32": out["gguf_f32"],
        "gguf_q8_0": out["gguf_q8_0"],
    }


def _civitai_copy(world: Path, model: Path) -> None:
    """Add a Civitai model re-uploading the base file to the recorded first page."""
    page_path = world / "civitai" / "api" / "v1" / "models.json"
    page = json.loads(page_path.read_text())
    sha = hashlib.sha256(model.read_bytes()).hexdigest().upper()
    item: dict[str, Any] = {
        "id": CIVITAI_ID,
        "name": "all-MiniLM-L6-v2 text encoder",
        "type": "Other",
        "stats": {"downloadCount": 4210, "thumbsUpCount": 12},
        "creator": {"username": "embedder"},
        "modelVersions": [
            {
                "id": CIVITAI_VERSION,
                "name": "v1",
                "baseModel": "Other",
                "publishedAt": "2024-06-01T12:00:00.000",
                "files": [
                    {
                        "id": 990003,
                        "name": "model.safetensors",
                        "sizeKB": model.stat().st_size / 1024,
                        "type": "Model",
                        "hashes": {"SHA256": sha, "AutoV2": sha[:10]},
                        "downloadUrl": "https://civitai.com/api/download/models/990002",
                    }
                ],
            }
        ],
    }
    page["items"].insert(0, item)
    page_path.write_text(json.dumps(page))


def main() -> None:
    """Build, serve, write the environment file, then wait to be killed."""
    model, world, env_file = (Path(a) for a in sys.argv[1:4])
    build(model, world)
    server = ReplayServer(world)
    # a Range reader that closes a connection early is normal here: no tracebacks
    server._httpd.handle_error = lambda *_: None  # type: ignore[method-assign]
    with server:
        env = {
            "HF_ENDPOINT": server.base("huggingface"),
            "MODELSCAN_CIVITAI_URL": server.base("civitai"),
            "MODELSCAN_REPLICATE_URL": server.base("replicate"),
            "MODELSCOPE_ENDPOINT": server.base("modelscope"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        }
        tmp = env_file.with_suffix(".tmp")
        tmp.write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
        tmp.replace(env_file)  # appears whole: demo.sh waits for it
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()


if __name__ == "__main__":
    main()
