"""`modelscan link` on remote fingerprints (digests null, a sketch subset), both DBs.

The real MiniLM safetensors file and conversions of its weights (torch zip and
GGUF F32 by torch and llama.cpp's ``gguf``: the same weights in other
containers; a float16 cast; a Q8_0 GGUF; a noisy fine-tune; a copy with every
matrix shuffled) are served by tests/rangeserver.py, fingerprinted through HTTP
Range (tensor digests, content_id and weights_id null; up to 32 sketches) and
saved; each file is listed in its own Hub repo, the original first. ``link``
must name each one's relation to the original from sketches, dtypes and
structure alone, and give the shuffled copy no edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lineage_world import DAY, T0, hf, remote, save
from rangeserver import RangeServer, minilm_conversions, minilm_derivatives
from sqlalchemy import select

from modelscan.db.store import Store
from modelscan.db.tables import LINEAGE, REPOS
from modelscan.lineage.infer import link
from modelscan.records import Fingerprint
from modelscan.registry.remote import fetch_remote_fingerprint

ORDER = [
    "minilm",
    "minilm_torch_zip",
    "minilm_gguf_f32",
    "minilm_f16",
    "minilm_gguf_q8_0",
    "minilm_noisy",
    "minilm_shuffled",
]
EXPECTED = {
    "minilm_torch_zip": ("conversion", "same-weights"),
    "minilm_gguf_f32": ("conversion", "same-weights"),
    "minilm_f16": ("conversion", "weight-similarity"),
    "minilm_gguf_q8_0": ("quantized", "weight-similarity"),
    "minilm_noisy": ("finetune", "weight-similarity"),
}


@pytest.fixture(scope="module")
def remote_fps(
    model_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Fingerprint]]:
    """Each file fingerprinted remotely through the two-origin range server."""
    folder = tmp_path_factory.mktemp("remote-link")
    files = {"minilm": model_files["minilm"]}
    files.update(minilm_conversions(model_files["minilm"], folder))
    files.update(minilm_derivatives(model_files["minilm"], folder))
    with RangeServer() as srv:
        for key in ORDER:
            srv.add(f"o/{key}", files[key].name, files[key])
        env = {"HF_ENDPOINT": srv.url}
        yield {
            key: fetch_remote_fingerprint(
                f"hf://o/{key}/{files[key].name}", env=env, sleep=lambda s: None
            )
            for key in ORDER
        }


def _relations(store: Store) -> dict[str, set[tuple[str, str, str]]]:
    """Map each child host id to its inferred (parent host id, relation, source)."""

    def read(conn: object) -> dict[str, set[tuple[str, str, str]]]:
        child, parent = REPOS.alias("c"), REPOS.alias("p")
        stmt = (
            select(
                child.c.host_id,
                parent.c.host_id,
                LINEAGE.c.relation,
                LINEAGE.c.source,
            )
            .join(child, child.c.id == LINEAGE.c.child_repo_id)
            .join(parent, parent.c.id == LINEAGE.c.parent_repo_id)
            .where(
                LINEAGE.c.source.in_(["same-weights", "weight-similarity"]),
                child.c.host == "huggingface",
            )
        )
        out: dict[str, set[tuple[str, str, str]]] = {}
        for c, p, rel, src in conn.execute(stmt):  # type: ignore[attr-defined]
            out.setdefault(c, set()).add((p, rel, src))
        return out

    return store.execute(read)  # type: ignore[no-any-return]


def test_remote_fingerprints_are_digest_free_sketch_subsets(
    remote_fps: dict[str, Fingerprint],
) -> None:
    """The records link decides on: no digests or ids, at most 32 sketches."""
    for fp in remote_fps.values():
        assert fp.remote is not None
        assert fp.weights_id is None
        assert fp.content_id is None
        assert all(t.digest is None for t in fp.tensors)
        assert 0 < sum(1 for t in fp.tensors if t.sketch) <= 32


def test_link_names_each_relation_from_remote_sketches(
    store: Store, remote_fps: dict[str, Fingerprint]
) -> None:
    """same-weights across containers, a cast, a quantization, a fine-tune; no more."""
    for day, key in enumerate(ORDER):
        fp = remote_fps[key]
        save(store, "huggingface", [hf(f"o/{key}", (remote(fp, key, "u"),))],
             T0 + day * DAY)  # fmt: skip
    for key in ORDER:
        store.save_fingerprint(
            remote_fps[key],
            location=f"https://cdn.example/o/{key}/model",
            host="remote",
            seen_at=T0 + 30 * DAY,
        )
    stats = link(store)
    found = _relations(store)
    want = {f"o/{k}": {("o/minilm", *rel)} for k, rel in EXPECTED.items()}
    assert found == want
    assert stats.similarity == 3
    again = link(store, full=True)
    assert _relations(store) == want
    assert again.removed == 0
