"""Remote fingerprints over HTTP Range against a local two-origin server.

Real published files (MiniLM safetensors, SmolLM2 Q4_1 GGUF, the whisperx
Lightning torch zip, the rxnmapper legacy pickle, silero's TorchScript and
GGML files) and the tests' own conversions of MiniLM (torch zip, legacy torch,
float16 safetensors) are served behind a ``/resolve/`` redirect to a second
origin with expiring signatures. Each remote record must equal the local one on
everything its bytes determine, within the budget counted by the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rangeserver import RangeServer, minilm_conversions

from modelscan.errors import FormatError, ModelscanError
from modelscan.records import Fingerprint
from modelscan.registry.http import HttpClient
from modelscan.registry.remote import (
    IGNORES_RANGE,
    BudgetExceeded,
    HttpRangeReader,
    RangeNotSupported,
    RemoteError,
    RemoteTarget,
    fetch_remote_fingerprint,
    parse_hf_ref,
)
from modelscan.scanner import remote as scanner_remote
from modelscan.scanner.fingerprint import fingerprint, open_reader
from modelscan.scanner.formats.torch_zip import _eocd, read_members
from modelscan.scanner.layout import Layout
from modelscan.scanner.remote import MAX_REQUESTS, TENSOR_BYTES

REAL = [
    "minilm",
    "smollm_gguf",
    "whisperx_bin",
    "rxn_bin",
    "silero_jit",
    "silero_safetensors",
]
SMALL = ["lpips_alex", "silero_ggml", "rxn_training_args"]
MADE = [
    "minilm_torch_zip",
    "minilm_torch_legacy",
    "minilm_f16",
    "minilm_gguf_f32",
    "minilm_gguf_q8_0",
]


@pytest.fixture(scope="module")
def files(
    model_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Every file the server hosts, by key."""
    made = minilm_conversions(model_files["minilm"], tmp_path_factory.mktemp("made"))
    return {**model_files, **made}


@pytest.fixture(scope="module")
def hub(files: dict[str, Path]) -> Iterator[RangeServer]:
    """The two-origin server hosting every file as ``o/<key>/<file name>``."""
    with RangeServer() as srv:
        for i, (key, path) in enumerate(sorted(files.items()), start=1):
            srv.add(f"o/{key}", path.name, path, version_id=1000 + i, file_id=i)
        yield srv


@pytest.fixture(autouse=True)
def _clean(hub: RangeServer) -> Iterator[None]:
    hub.reset()
    yield
    hub.ignore_range = False
    hub.hostile = None


def _ref(files: dict[str, Path], key: str) -> str:
    return f"hf://o/{key}/{files[key].name}"


def _fetch(hub: RangeServer, ref: str, **kwargs: object) -> Fingerprint:
    env = {"HF_ENDPOINT": hub.url, **kwargs.pop("env", {})}  # type: ignore[dict-item]
    return fetch_remote_fingerprint(ref, env=env, sleep=lambda s: None, **kwargs)  # type: ignore[arg-type]


def _metadata_bytes(path: Path, layout: Layout) -> int:
    """Bytes a format's metadata spans: header, zip directory and pickles."""
    if layout.format == "safetensors":
        assert layout.body_offset is not None
        return layout.body_offset
    if layout.format in ("torch-zip", "torchscript"):
        with open_reader(path) as reader:
            members = sorted(read_members(reader), key=lambda m: m.header_offset)
            cd_offset = _eocd(reader)[3]
        ends = [m.header_offset for m in members[1:]] + [cd_offset]
        meta = sum(
            end - m.header_offset
            for m, end in zip(members, ends, strict=True)
            if "/data/" not in m.name or m.name.endswith(".pkl")
        )
        return meta + path.stat().st_size - cd_offset
    return min((t.offset for t in layout.tensors), default=path.stat().st_size)


def _layout(path: Path) -> Layout:
    from modelscan.scanner.fingerprint import read_layout

    with open_reader(path) as reader:
        return read_layout(reader)


def _assert_same(remote: Fingerprint, local: Fingerprint) -> int:
    """Remote equals local on what its bytes determine; return sketches compared."""
    assert remote.format == local.format
    assert remote.sha256 == local.sha256
    assert remote.size == local.size
    assert remote.autov1 == local.autov1
    assert remote.structure_id == local.structure_id
    assert [(t.name, t.dtype, t.shape, t.nbytes) for t in remote.tensors] == [
        (t.name, t.dtype, t.shape, t.nbytes) for t in local.tensors
    ]
    assert remote.parameter_count == local.parameter_count
    assert remote.metadata == local.metadata
    assert remote.pickle_safety == local.pickle_safety
    compared = 0
    for r, loc in zip(remote.tensors, local.tensors, strict=True):
        if r.sketch is not None:
            assert r.sketch == loc.sketch, r.name
            compared += 1
    return compared


@pytest.mark.parametrize("key", REAL + MADE)
def test_remote_equals_local_within_budget(
    hub: RangeServer, files: dict[str, Path], key: str
) -> None:
    """Same format, sha256, structure, tensors, sketches; 40 requests, meta + 1 MiB."""
    path = files[key]
    fp = _fetch(hub, _ref(files, key))
    local = fingerprint(path)
    compared = _assert_same(fp, local)
    eligible = scanner_remote.sketch_subset(_layout(path).tensors)
    assert compared == len(eligible) > 0  # every tensor of the subset was read
    assert fp.remote is not None
    assert not fp.remote.whole
    assert fp.content_id is None
    assert fp.weights_id is None
    assert all(t.digest is None for t in fp.tensors)
    assert hub.count() == fp.remote.requests <= MAX_REQUESTS
    meta = _metadata_bytes(path, _layout(path))
    assert hub.bytes_sent() <= meta + TENSOR_BYTES + 1024  # + the 302 bodies
    assert fp.remote.bytes <= meta + TENSOR_BYTES


@pytest.mark.parametrize("key", SMALL)
def test_small_files_are_read_whole_and_match_exactly(
    hub: RangeServer, files: dict[str, Path], key: str
) -> None:
    """A file under the byte cap is read whole: digests and ids equal local."""
    fp = _fetch(hub, _ref(files, key))
    local = fingerprint(files[key])
    assert fp.remote is not None
    assert fp.remote.whole
    assert fp.remote.bytes == local.size <= TENSOR_BYTES + 64 * 1024
    assert fp.to_json() == {
        **local.to_json(),
        "path": fp.path,
        "remote": fp.remote.to_json(),
    }


def test_record_says_where_it_came_from_and_what_it_cost(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """The JSON record carries remote.url, requests and bytes; hashes the host's."""
    ref = _ref(files, "minilm")
    record = _fetch(hub, ref).to_json()
    assert record["remote"]["url"] == ref == record["path"]
    assert record["remote"]["requests"] == hub.count()
    assert record["autov2"] == record["sha256"][:10]
    assert record["autov3"] is None
    assert record["content_id"] is None


def test_subset_is_the_same_for_files_of_the_same_structure(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """MiniLM as safetensors and as torch zip: same structure, same sketched tensors."""
    a = _fetch(hub, _ref(files, "minilm"))
    b = _fetch(hub, _ref(files, "minilm_torch_zip"))
    assert a.structure_id == b.structure_id
    sketched_a = {t.name: t.sketch for t in a.tensors if t.sketch}
    sketched_b = {t.name: t.sketch for t in b.tensors if t.sketch}
    assert sketched_a == sketched_b
    assert len(sketched_a) == 32


def test_expired_signature_is_resolved_again(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """A 403 from the CDN after the signature expired re-resolves once and goes on."""
    reader = HttpRangeReader(
        parse_hf_ref(_ref(files, "minilm"), endpoint=hub.url)[3],
        client=HttpClient("huggingface"),
        name="minilm",
    )
    reader.open()
    hub.expire()
    fp = scanner_remote.remote_fingerprint(reader, url="minilm", sha256=None)
    assert reader.resolves == 1
    assert [s.status for s in hub.log].count(403) == 1
    assert sum(1 for s in hub.log if "/resolve/" in s.path) == 2
    _assert_same(
        fp, Fingerprint(**{**_fields(fingerprint(files["minilm"])), "sha256": ""})
    )


def _fields(fp: Fingerprint) -> dict[str, object]:
    return {name: getattr(fp, name) for name in fp.__slots__}  # type: ignore[attr-defined]


def test_server_ignoring_range_is_refused_at_the_first_answer(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """200 with the whole 90 MB body: one-line error, a few MiB pulled at most."""
    hub.ignore_range = True
    ref = _ref(files, "minilm")
    with pytest.raises(RangeNotSupported) as info:
        _fetch(hub, ref)
    assert str(info.value) == f"{ref}: {IGNORES_RANGE}"
    assert hub.count("cdn") == 1
    assert hub.bytes_sent() < 8 << 20


def test_token_goes_to_the_hub_never_to_the_cdn(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """HF_TOKEN is sent with the resolve request only, not after the redirect."""
    _fetch(hub, _ref(files, "whisperx_bin"), env={"HF_TOKEN": "hf_secret"})
    assert all(s.auth for s in hub.log if s.origin == "hub")
    assert not any(s.auth for s in hub.log if s.origin == "cdn")


def test_transient_failures_are_retried(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """503 twice, then the real answers: the same record, retries counted."""
    hub.fail(503, times=2)
    fp = _fetch(hub, _ref(files, "rxn_bin"))
    assert fp.remote is not None
    assert fp.remote.requests == hub.count()
    assert [s.status for s in hub.log[:2]] == [503, 503]
    _assert_same(fp, fingerprint(files["rxn_bin"]))


@pytest.mark.parametrize(
    ("hostile", "words"),
    [
        ("truncate", "broke off"),
        ("extra", "more bytes"),
        ("wrong_range", "Content-Range"),
    ],
)
def test_hostile_answers_give_one_clear_line(
    hub: RangeServer, files: dict[str, Path], hostile: str, words: str
) -> None:
    """A truncated body, a longer body or a wrong Content-Range: RemoteError."""
    hub.hostile = hostile
    ref = _ref(files, "minilm")
    with pytest.raises(RemoteError) as info:
        _fetch(hub, ref)
    message = str(info.value)
    assert message.startswith(f"{ref}: ")
    assert words in message
    assert "\n" not in message
    assert "Signature" not in message


def test_missing_file_and_bad_reference(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """404 names the reference; a malformed reference says what is expected."""
    with pytest.raises(RemoteError, match="HTTP 404"):
        _fetch(hub, "hf://o/minilm/nothing.safetensors")
    with pytest.raises(RemoteError, match="OWNER/NAME/PATH"):
        _fetch(hub, "hf://o/minilm")


def test_request_budget_is_a_hard_cap(hub: RangeServer, files: dict[str, Path]) -> None:
    """With 3 requests allowed a GGUF header cannot be read: a clear error."""
    with pytest.raises(BudgetExceeded, match="more than 3 requests"):
        _fetch(hub, _ref(files, "smollm_gguf"), max_requests=3)
    assert hub.count() == 3


def test_fewer_requests_read_a_prefix_of_the_same_subset(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """A tighter budget reads fewer sketches, always a prefix of the same order."""
    full = _fetch(hub, _ref(files, "minilm"))
    tight = _fetch(hub, _ref(files, "minilm"), max_requests=12)
    assert tight.remote is not None
    assert tight.remote.requests <= 12
    got = {t.name for t in tight.tensors if t.sketch}
    order = [
        t.name for t in scanner_remote.sketch_subset(_layout(files["minilm"]).tensors)
    ]
    assert got == set(order[: len(got)])
    assert 0 < len(got) < 32
    assert all(
        t.sketch == f.sketch
        for t, f in zip(tight.tensors, full.tensors, strict=False)
        if t.sketch
    )


def test_plain_https_url_without_redirect(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """A Range-capable server answered directly: no sha256 stated, the rest known."""
    fp = _fetch(hub, hub.direct_url("o/minilm", files["minilm"].name))
    assert fp.sha256 == ""
    assert fp.to_json()["sha256"] is None
    assert fp.structure_id == fingerprint(files["minilm"]).structure_id


def test_civitai_version_primary_file_and_file_id(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """civitai://VERSION reads the version's primary file; Civitai's SHA256 is kept."""
    hosted = hub.files[f"o/whisperx_bin/{files['whisperx_bin'].name}"]
    env = {"MODELSCAN_CIVITAI_URL": hub.url}
    fp = _fetch(hub, f"civitai://{hosted.version_id}", env=env)
    assert fp.sha256 == hosted.sha256
    assert fp.format == "torch-zip"
    again = _fetch(hub, f"civitai://{hosted.version_id}/{hosted.file_id}", env=env)
    assert again.structure_id == fp.structure_id
    with pytest.raises(RemoteError, match="lists no file 999"):
        _fetch(hub, f"civitai://{hosted.version_id}/999", env=env)


def test_not_a_model_file(hub: RangeServer, tmp_path: Path) -> None:
    """HTML served in place of weights is a FormatError naming the reference."""
    page = tmp_path / "page.bin"
    page.write_bytes(b"<!doctype html><html>login</html>" * 100)
    hub.add("o/html", "page.bin", page)
    with pytest.raises(FormatError, match="HTML") as info:
        _fetch(hub, "hf://o/html/page.bin")
    assert isinstance(info.value, ModelscanError)


def test_crawl_passes_a_target_with_the_listed_sha256(
    hub: RangeServer, files: dict[str, Path]
) -> None:
    """A RemoteTarget (resolve URL, token, listed sha256) needs no reference parsing."""
    hosted = hub.files[f"o/rxn_bin/{files['rxn_bin'].name}"]
    target = RemoteTarget(
        ref="hf:o/rxn_bin/pytorch_model.bin",
        url=hub.resolve_url("o/rxn_bin", files["rxn_bin"].name),
        host="huggingface",
        token="hf_secret",
        token_env="HF_TOKEN",
        sha256=hosted.sha256.upper(),
    )
    client = HttpClient("huggingface", token_env="HF_TOKEN")
    fp = fetch_remote_fingerprint(target, client=client, sleep=lambda s: None)
    assert fp.path == target.ref
    assert fp.sha256 == hosted.sha256
    assert client.requests == hub.count()


def test_byte_budget_is_a_hard_cap(hub: RangeServer, files: dict[str, Path]) -> None:
    """max_bytes below the GGUF header refuses before the request that passes it."""
    with pytest.raises(BudgetExceeded, match="more than 500000 bytes"):
        _fetch(hub, _ref(files, "smollm_gguf"), max_bytes=500_000)
    assert hub.bytes_sent() <= 500_000


def test_whole_read_checks_the_hosts_sha256(
    hub: RangeServer, files: dict[str, Path], tmp_path: Path
) -> None:
    """A small file whose bytes differ from the stated sha256 is an error."""
    copy = tmp_path / "alex.pth"
    copy.write_bytes(files["lpips_alex"].read_bytes())
    hosted = hub.add("o/liar", "alex.pth", copy)
    hosted.sha256 = "0" * 64  # the server now states (and signs) a wrong hash
    with pytest.raises(RemoteError, match="the host states 0000"):
        _fetch(hub, "hf://o/liar/alex.pth")


def test_large_legacy_ggml_is_read_at_file_level(
    hub: RangeServer, files: dict[str, Path], tmp_path: Path
) -> None:
    """A 3 MiB GGML file: format and AutoV1 from two ranges, the host's sha256."""
    path = tmp_path / "ggml-model.bin"
    head = files["silero_ggml"].read_bytes()
    path.write_bytes(head + bytes(3 << 20))
    hub.add("o/ggml", path.name, path)
    fp = _fetch(hub, f"hf://o/ggml/{path.name}")
    local = fingerprint(path)
    assert (fp.format, fp.sha256, fp.autov1) == ("ggml", local.sha256, local.autov1)
    assert fp.metadata == local.metadata
    assert fp.remote is not None
    assert fp.remote.requests == hub.count() <= 3
    assert hub.bytes_sent() <= 192 * 1024
