"""A small family of repos and files as plain records (see memory_index.py).

- ``base`` in hf:org/base (day 0), copied to hf:mirror/base and civitai:101 (bob,
  gone on day 30), and re-saved in another container in hf:conv/base-bin;
- ``ft``: base plus small noise in hf:tuner/ft, whose card declares org/base;
- ``ft2``: base plus other noise in hf:liar/ft2, whose card declares other/unrelated;
- ``other``: unrelated weights of the same shapes in hf:other/unrelated;
- ``fresh``: unrelated weights in hf:liar2/fresh declaring a fine-tune of other;
- ``lora``: a file in civitai:202 naming base's sha256 as its base (kohya).
"""

from __future__ import annotations

import numpy as np
from memory_index import MemoryIndex, layers

from modelscan.lineage.rows import ClaimRow

SHA = {name: name[0] * 63 + str(i) for i, name in
       enumerate(("base", "bin", "ft", "ft2", "other", "fresh", "lora"))}  # fmt: skip


def noisy(windows: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Each window plus small Gaussian noise: a fine-tune."""
    rng = np.random.default_rng(seed)
    return [w + 0.05 * rng.standard_normal(256) for w in windows]


def build() -> tuple[MemoryIndex, dict[str, int]]:
    """The world, and its repo ids by host id."""
    index = MemoryIndex()
    repo = {
        hid: index.add_repo(host, hid, owner)
        for host, hid, owner in (
            ("huggingface", "org/base", "org"),
            ("huggingface", "mirror/base", "mirror"),
            ("civitai", "101", "bob"),
            ("huggingface", "conv/base-bin", "conv"),
            ("huggingface", "tuner/ft", "tuner"),
            ("huggingface", "liar/ft2", "liar"),
            ("huggingface", "other/unrelated", "other"),
            ("huggingface", "liar2/fresh", "liar2"),
            ("civitai", "202", "carol"),
        )
    }
    base = layers(1)
    index.add_blob(SHA["base"], base, content_id="C1", weights_id="W1", dtype="F32")
    index.add_blob(SHA["bin"], base, content_id="C1", weights_id="W1", dtype="F32")
    index.add_blob(SHA["ft"], noisy(base, 10), dtype="F32")
    index.add_blob(SHA["ft2"], noisy(base, 11), dtype="F32")
    index.add_blob(SHA["other"], layers(2), dtype="F32")
    index.add_blob(SHA["fresh"], layers(3), dtype="F32")
    index.add_blob(SHA["lora"])
    for sha, hid, day, gone in (
        ("base", "org/base", 0, None),
        ("base", "mirror/base", 5, None),
        ("base", "101", 10, 30),
        ("ft", "tuner/ft", 20, None),
        ("ft2", "liar/ft2", 21, None),
        ("other", "other/unrelated", 1, None),
        ("fresh", "liar2/fresh", 22, None),
        ("lora", "202", 25, None),
    ):
        index.add_file(SHA[sha], repo[hid], day, gone=gone)
    index.add_file(SHA["bin"], repo["conv/base-bin"], 15, path="pytorch_model.bin")
    index.claim_rows.append(
        ClaimRow(sha256=SHA["lora"], key="ss_new_sd_model_hash", value=SHA["base"],
                 meaning="sha256-of-base", meta={"ss_network_module": "networks.lora"})
    )  # fmt: skip
    index.declare(repo["tuner/ft"], "hf:org/base")
    index.declare(repo["liar/ft2"], "hf:other/unrelated")
    index.declare(repo["liar2/fresh"], "hf:other/unrelated")
    return index, repo
