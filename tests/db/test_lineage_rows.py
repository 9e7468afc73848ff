"""The typed loads lineage decides over, on both databases (db/lineage_rows.py)."""

from __future__ import annotations

import pytest
from lineage_world import World, build, write_files

from modelscan.db.store import Store
from modelscan.lineage.infer import link
from modelscan.lineage.rows import Resolved
from modelscan.lineage.subjects import MODEL_SUFFIXES
from modelscan.records import Fingerprint


@pytest.fixture(scope="module")
def fps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Fingerprint]:
    """The world's files, written and fingerprinted once per module."""
    return write_files(tmp_path_factory.mktemp("world"))


@pytest.fixture
def world(store: Store, fps: dict[str, Fingerprint]) -> World:
    """The world saved in a fresh index."""
    return build(store, fps)


def test_holdings_skip_local_files_and_name_the_first_upload(
    store: Store, world: World
) -> None:
    """Three hosted repos hold base (the local copy is none); org/base was first."""
    sha = world.sha["base"]
    holdings = store.holdings([sha])
    origin = holdings.origin[sha]
    assert len(holdings.repos[sha]) == 3
    assert store.repos([origin.repo_id])[origin.repo_id].host_id == "org/base"
    assert holdings.holders() == tuple(sorted(holdings.repos[sha]))


def test_references_resolve_by_hash_url_and_any_case(
    store: Store, world: World
) -> None:
    """sha256:, autov1:, a Hub URL in any case and a dataset URL each resolve right."""
    base = store.find_repo("huggingface", "org/base")
    fp = world.fps["base"]
    got = store.resolve_refs(
        [
            f"sha256:{fp.sha256}",
            f"autov1:{fp.autov1.upper()}",
            "https://huggingface.co/ORG/Base/tree/main",
            "https://huggingface.co/datasets/org/base",
            "SD 1.5",
        ]
    )
    assert got[f"sha256:{fp.sha256}"] == Resolved(fp.sha256, base)
    assert got[f"autov1:{fp.autov1.upper()}"] == Resolved(fp.sha256, base)
    assert got["https://huggingface.co/ORG/Base/tree/main"] == Resolved(None, base)
    assert got["https://huggingface.co/datasets/org/base"] == Resolved()
    assert got["SD 1.5"] == Resolved()


def test_blobs_sketches_and_shapes_load_in_file_order(
    store: Store, world: World
) -> None:
    """A blob's sketches come in file order with their shapes; 1-D tensors too."""
    fp = world.fps["base"]
    info = store.blobs([fp.sha256])[fp.sha256]
    assert (info.content_id, info.parameter_count) == (
        fp.content_id,
        fp.parameter_count,
    )
    sketches = store.sketches([info.id])[info.id]
    assert [s.name for s in sketches] == [t.name for t in fp.tensors if t.sketch]
    assert sorted(store.matrix_shapes([info.id])[info.id]) == sorted(
        t.shape for t in fp.tensors
    )
    family = store.blob_families([fp.content_id or ""], [])
    assert set(family) == {fp.sha256, world.sha["bin"]}


def test_edges_from_and_to_and_model_blobs(store: Store, world: World) -> None:
    """Edges load by child, by parent repo and by unresolved reference text."""
    link(store)
    base = store.find_repo("huggingface", "org/base")
    ft = store.find_repo("huggingface", "tuner/ft")
    assert base is not None
    assert ft is not None
    up = {(e.relation, e.source) for e in store.edges_from([ft])}
    assert up == {("finetune", "declared-card"), ("finetune", "weight-similarity")}
    only = store.edges_from([ft], sources=("weight-similarity",))
    assert [e.parent_repo_id for e in only] == [base]
    down = {e.child_repo_id for e in store.edges_to([base])}
    assert ft in down
    assert store.edges_to(parent_refs=["hf:never/crawled"]) == []
    assert store.repo_model_blobs(base, MODEL_SUFFIXES) == (world.sha["base"],)


def test_sketch_pages_hold_the_bucket_shapes_only(store: Store, world: World) -> None:
    """Pages by blob id hand each sketched blob once, with its matrices of the shape."""
    shape = (256, 256)
    seen: dict[int, list[str]] = {}
    after: int | None = 0
    pages = 0
    while after is not None:
        page = store.sketch_page([shape], after, 2)
        pages += 1
        assert set(page.blobs) == set(page.sketches)
        for bid, sketches in page.sketches.items():
            assert bid not in seen
            assert {s.shape for s in sketches} == {shape}
            seen[bid] = [s.name for s in sketches]
        after = page.next_after
    want = {"base", "bin", "ft", "ft2", "other", "fresh"}
    ids = {store.blobs([world.sha[k]])[world.sha[k]].id for k in want}
    assert set(seen) == ids
    assert all(names == [f"layers.{i}.q.weight" for i in range(4)]
               for names in seen.values())  # fmt: skip
    assert pages >= 3
    assert store.sketch_page([(1, 2)], 0, 100).sketches == {}
