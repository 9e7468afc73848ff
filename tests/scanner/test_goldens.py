"""Goldens: the identities of every real published model file, checked by default.

The expected records live in tests/goldens/<key>.json. They pin the exact
definitions of DESIGN.md section 4 (content_id, weights_id, structure_id, the
sketch window, AutoV1/V3) so that a change to any of them shows up as a diff
to review, not as silently different ids in users' indexes. After an intended
change, rewrite them with ``pytest tests/scanner/test_goldens.py --update-goldens``
and commit the diff.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from modelscan.records import Fingerprint
from modelscan.scanner.fingerprint import fingerprint

GOLDENS = Path(__file__).resolve().parents[1] / "goldens"
KEYS = [
    "minilm",
    "silero_safetensors",
    "silero_jit",
    "whisperx_bin",
    "lpips_alex",
    "rxn_bin",
    "rxn_training_args",
    "smollm_gguf",
    "silero_ggml",
]


def _golden_record(fp: Fingerprint) -> dict[str, object]:
    """What a golden pins: every id, and per tensor its digest and sketch hash."""
    record = fp.to_json(with_tensors=False)
    record.pop("path")
    record["tensors"] = [
        {
            "name": t.name,
            "dtype": t.dtype,
            "shape": list(t.shape),
            "digest": t.digest,
            "sketch_sha256": hashlib.sha256(t.sketch).hexdigest() if t.sketch else None,
        }
        for t in fp.tensors
    ]
    return record


@pytest.mark.parametrize("key", KEYS)
def test_fingerprint_matches_golden(
    key: str, model_files: dict[str, Path], request: pytest.FixtureRequest
) -> None:
    """The fingerprint of each real file equals its reviewed golden record."""
    got = _golden_record(fingerprint(model_files[key], all_hashes=True))
    path = GOLDENS / f"{key}.json"
    if request.config.getoption("--update-goldens"):
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(path.read_text())
    assert got == want
