"""Real model files for the index tests (a module name no other test folder uses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def write_model(
    path: Path,
    *,
    seed: int,
    names: tuple[str, ...] = ("encoder.weight", "encoder.bias", "head.weight"),
    metadata: dict[str, str] | None = None,
    values_seed: int | None = None,
) -> Path:
    """Write a real safetensors file with deterministic random tensors."""
    rng = np.random.default_rng(seed if values_seed is None else values_seed)
    shapes = [(64, 32), (64,), (8, 64)]
    tensors = {
        n: rng.standard_normal(shapes[i % 3]).astype(np.float32)
        for i, n in enumerate(names)
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"seed": str(seed), **(metadata or {})})
    return path
