"""Store: saving fingerprints and the `where` lookup, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import blake3
import pytest
from sqlalchemy import func, select

from modelscan.db.engine import open_store
from modelscan.db.lookup import parse_query
from modelscan.db.store import Store
from modelscan.db.tables import BLOBS, CLAIMS, FILES, TENSORS
from modelscan.errors import ReadOnlyViolation, StoreError
from modelscan.records import Fingerprint, civitai_crc32
from modelscan.scanner.fingerprint import fingerprint

MakeFp = Callable[..., Fingerprint]


def _count(store: Store, table: object) -> int:
    return int(
        store.execute(
            lambda c: c.execute(select(func.count()).select_from(table)).scalar()
        )
    )


@pytest.fixture
def silero(model_files: dict[str, Path]) -> Fingerprint:
    """The real published silero safetensors file (1.2 MiB: autov1 is meaningful)."""
    return fingerprint(model_files["silero_safetensors"], all_hashes=True)


def test_every_hash_spelling_finds_the_saved_file(
    store: Store, silero: Fingerprint, model_files: dict[str, Path]
) -> None:
    """A saved real file is found by sha256, autov1/2/3, blake3, CRC32, any case."""
    path = model_files["silero_safetensors"]
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    n = int.from_bytes(data[:8], "little")
    spellings = {
        "sha256": [sha, sha.upper()],
        "autov1": [hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8].upper()],
        "autov2": [sha[:10].upper(), "autov2:" + sha[:10]],
        "autov3": [hashlib.sha256(data[8 + n :]).hexdigest()[:12].upper()],
        "blake3": [blake3.blake3(data).hexdigest().upper()],
        "crc32": [civitai_crc32(zlib.crc32(data)), f"{zlib.crc32(data):08x}"],
    }
    store.save_fingerprint(silero, location=str(path))
    for kind, queries in spellings.items():
        for q in queries:
            matches = store.find(q)
            assert [(m.kind, m.host, m.path, m.status) for m in matches] == [
                (kind, "local", str(path), "live")
            ], q
            assert matches[0].sha256 == sha


def test_saving_again_is_idempotent(store: Store, make_fp: MakeFp) -> None:
    """Re-saving the same file keeps one occurrence and only moves last_seen."""
    fp = make_fp(seed=1)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    first = store.save_fingerprint(fp, location=fp.path, seen_at=t0)
    counts = store.row_counts()
    again = store.save_fingerprint(fp, location=fp.path, seen_at=t0 + timedelta(days=3))
    assert again == first
    assert store.row_counts() == counts
    (m,) = store.find(fp.sha256)
    assert (m.first_seen, m.last_seen) == (t0, t0 + timedelta(days=3))


def test_timestamps_come_back_as_the_same_instant_in_utc(
    store: Store, make_fp: MakeFp
) -> None:
    """A time given in another zone is stored and returned as the same UTC instant."""
    from zoneinfo import ZoneInfo

    fp = make_fp(seed=18)
    local = datetime(2024, 6, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    store.save_fingerprint(fp, location=fp.path, seen_at=local)
    (m,) = store.find(fp.sha256)
    assert m.first_seen == local
    assert m.first_seen.utcoffset() == timedelta(0)


def test_tensors_and_claims_are_stored(store: Store, make_fp: MakeFp) -> None:
    """Tensors keep name, shape, digest and sketch bytes; embedded claims are rows."""
    claimed = "a" * 64
    fp = make_fp(seed=2, metadata={"modelspec.hash_sha256": "0x" + claimed})
    store.save_fingerprint(fp, location=fp.path)

    def read(conn: object) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        t = conn.execute(  # type: ignore[attr-defined]
            select(
                TENSORS.c.name, TENSORS.c.shape, TENSORS.c.digest, TENSORS.c.sketch
            ).order_by(TENSORS.c.position)
        ).all()
        c = conn.execute(select(CLAIMS.c.key, CLAIMS.c.value)).all()  # type: ignore[attr-defined]
        return t, c

    tensors, claims = store.execute(read)
    assert [tuple(r) for r in tensors] == [
        (t.name, list(t.shape), t.digest, t.sketch) for t in fp.tensors
    ]
    assert [tuple(r) for r in claims] == [(c.key, c.value) for c in fp.claims]
    assert fp.claims, "the scanner reads modelspec.hash_sha256 as a claim"


def test_same_weights_in_other_files_follow_exact_matches(
    store: Store, make_fp: MakeFp
) -> None:
    """`where` lists exact copies, then same content_id, then same weights_id."""
    original = make_fp("a/model.safetensors", seed=3, values_seed=7)
    copy = make_fp("b/model.safetensors", seed=3, values_seed=7)
    remeta = make_fp("c/model.safetensors", seed=4, values_seed=7)
    renamed = make_fp(
        "d/model.safetensors", seed=3, values_seed=7, names=("enc.w", "enc.b", "out.w")
    )
    unrelated = make_fp("e/model.safetensors", seed=9)
    assert copy.sha256 == original.sha256
    assert remeta.content_id == original.content_id != renamed.content_id
    assert renamed.weights_id == original.weights_id
    for fp in (original, copy, remeta, renamed, unrelated):
        store.save_fingerprint(fp, location=fp.path)
    found = [(m.kind, Path(m.path).parent.name) for m in store.find(original.autov2)]
    assert found == [
        ("autov2", "a"),
        ("autov2", "b"),
        ("content_id", "c"),
        ("weights_id", "d"),
    ]


def test_find_fingerprint_of_an_unsaved_file(store: Store, make_fp: MakeFp) -> None:
    """A file never saved is matched to saved files holding its weights."""
    saved = make_fp("saved/model.safetensors", seed=5, values_seed=11)
    store.save_fingerprint(saved, location=saved.path)
    local = make_fp("local/model.safetensors", seed=6, values_seed=11)
    assert store.find(local.sha256) == []
    assert [(m.kind, m.sha256) for m in store.find_fingerprint(local)] == [
        ("content_id", saved.sha256)
    ]


def test_rewritten_file_keeps_its_history(store: Store, make_fp: MakeFp) -> None:
    """A path saved with new content closes the old occurrence, deleting nothing."""
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    old = make_fp("x/model.safetensors", seed=12)
    store.save_fingerprint(old, location=old.path, seen_at=t0)
    new = make_fp("x/model.safetensors", seed=13)
    store.save_fingerprint(new, location=new.path, seen_at=t0 + timedelta(hours=1))
    (gone,) = store.find(old.sha256)
    assert (gone.status, gone.since, gone.last_seen) == (
        "gone",
        t0 + timedelta(hours=1),
        t0,
    )
    assert [m.status for m in store.find(new.sha256)] == ["live"]
    assert _count(store, FILES) == 2


def test_published_hashes_do_not_override_computed_ones(
    store: Store, make_fp: MakeFp
) -> None:
    """A later save keeps computed hashes; a hash missing before is filled in."""
    fp = make_fp(seed=14)
    partial = dataclasses.replace(fp, blake3=None, crc32=None)
    store.save_fingerprint(partial, location=fp.path)
    store.save_fingerprint(fp, location=fp.path)
    store.save_fingerprint(partial, location=fp.path)
    row = store.execute(
        lambda c: c.execute(
            select(BLOBS.c.blake3, BLOBS.c.crc32, BLOBS.c.tensor_count)
        ).one()
    )
    assert tuple(row) == (fp.blake3, f"{fp.crc32:08x}", len(fp.tensors))


def test_metadata_json_that_postgres_would_refuse_is_stored(
    store: Store, make_fp: MakeFp
) -> None:
    """NaN, bytes and NUL characters in metadata and names do not fail a save."""
    fp = make_fp(seed=15)
    odd = dataclasses.replace(
        fp, metadata={"x": float("nan"), "raw": b"\x00\x01", "t": "a\x00b"}
    )
    store.save_fingerprint(odd, location=fp.path + "\x00weird")
    (m,) = store.find(fp.sha256)
    assert m.path.endswith("\ufffdweird")
    meta = store.execute(lambda c: c.execute(select(BLOBS.c.metadata)).scalar())
    assert meta["x"] == "nan"
    assert meta["raw"] == "AAE="


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("not-a-hash", "not a hash"),
        ("abc123", "give 8 to 64"),
        ("a" * 65, "give 8 to 64"),
        ("md5:" + "a" * 32, "unknown hash kind"),
        ("autov1:" + "a" * 10, "cannot be a autov1"),
    ],
)
def test_bad_queries_are_one_line_errors(query: str, reason: str) -> None:
    """Queries that are no hash fail with a message naming the problem."""
    with pytest.raises(StoreError, match=reason):
        parse_query(query)


def test_empty_autov1_matches_nothing_by_autov1() -> None:
    """A1111's autov1 of every file under 1 MiB is not looked up as an autov1."""
    empty = hashlib.sha256(b"").hexdigest()[:8]
    assert "autov1" not in [q.kind for q in parse_query(empty)]


def test_naive_timestamps_are_refused(store: Store, make_fp: MakeFp) -> None:
    """Timestamps must be timezone-aware: a naive one is a one-line StoreError."""
    fp = make_fp(seed=16)
    with pytest.raises(StoreError, match="naive timestamp"):
        store.save_fingerprint(fp, location=fp.path, seen_at=datetime(2024, 1, 1))


def test_read_only_store_refuses_writes(
    store: Store, db_url: str, make_fp: MakeFp
) -> None:
    """A store opened read-only is refused writes by the database itself."""
    fp = make_fp(seed=17)
    store.save_fingerprint(fp, location=fp.path)
    ro = open_store(db_url, read_only=True)
    try:
        assert [m.kind for m in ro.find(fp.sha256)] == ["sha256"]
        with pytest.raises(ReadOnlyViolation, match="read-only"):
            ro.save_fingerprint(fp, location=fp.path + ".copy")
    finally:
        ro.close()
    assert _count(store, FILES) == 1
    assert "***" not in repr(ro)
    assert "Store(" in repr(ro)
