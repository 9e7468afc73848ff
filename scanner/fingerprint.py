"""Fingerprint one model file: the only I/O in scanner/.

Opens the file, sniffs its format from the magic bytes, lets the format's parser
locate every tensor, then reads the file once (``reader.py``: one reader, a ring
of buffers, one thread per digest) for the file hashes, the tensor digests and
the sketch windows; only a strided view's window needs positioned reads.

Example:
    >>> fp = fingerprint("model.safetensors")  # doctest: +SKIP
    >>> fp.sha256, fp.autov2, fp.content_id  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from modelscan.errors import FormatError, TruncatedFile, UnknownFormat, UnreadableFile
from modelscan.records import Fingerprint, TensorFingerprint
from modelscan.scanner import hashing, identity
from modelscan.scanner import reader as ring
from modelscan.scanner.claims import claims_from_metadata
from modelscan.scanner.layout import Layout, TensorSpan, gc_paused
from modelscan.scanner.sniff import HEAD_BYTES, Format, detect_format, why_unknown

if TYPE_CHECKING:  # pathlib only for a directory walk: not a file's start-up
    from pathlib import Path

THREADED_MIN_SIZE = 16 << 20  # below this, thread start-up costs more than it saves
# Tensor BLAKE3 sinks a file is split into, for plan_lanes() to balance: on 2 cores
# a safetensors file ran in 0.84 s with 4 against 0.87 s with 1 (8: 0.87 s).
SPAN_GROUPS = 4


class FileReader:
    """A :class:`~modelscan.scanner.layout.RangeReader` over a local file (pread)."""

    def __init__(self, path: str, fd: int, size: int) -> None:
        self._path = path
        self._fd = fd
        self._size = size

    @property
    def size(self) -> int:
        """File size in bytes."""
        return self._size

    @property
    def name(self) -> str:
        """The path, for messages."""
        return self._path

    @property
    def fd(self) -> int:
        """The open descriptor (positioned reads only: no shared file offset)."""
        return self._fd

    def read_at(self, offset: int, n: int) -> bytes:
        """Return exactly ``n`` bytes at ``offset`` or raise TruncatedFile."""
        if offset < 0 or n < 0 or offset + n > self._size:
            raise TruncatedFile(
                self._path, f"needs bytes {offset}..{offset + n}, file has {self._size}"
            )
        data = os.pread(self._fd, n, offset)
        if len(data) != n:
            raise TruncatedFile(self._path, f"file shrank while reading at {offset}")
        return data


def _open_regular(path: str) -> tuple[int, int]:
    """Open ``path`` for reading if it is a regular file; return (fd, size)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UnreadableFile(path, "no such file") from None
    except PermissionError:
        raise UnreadableFile(path, "permission denied") from None
    except OSError as exc:
        raise UnreadableFile(path, exc.strerror or str(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableFile(path, "is a directory")
    if stat.S_ISFIFO(st.st_mode):
        raise UnreadableFile(path, "is a FIFO, not a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(path, "not a regular file (device or socket)")
    try:
        fd = os.open(path, os.O_RDONLY)
    except PermissionError:
        raise UnreadableFile(path, "permission denied") from None
    except OSError as exc:
        reason = "permission denied" if exc.errno == errno.EACCES else exc.strerror
        raise UnreadableFile(path, reason or str(exc)) from None
    return fd, st.st_size


@contextmanager
def open_reader(path: str | os.PathLike[str]) -> Iterator[FileReader]:
    """Open a regular file as a :class:`FileReader`; closed on exit.

    Raises:
        UnreadableFile: missing, a directory, a FIFO, or permission denied.
    """
    name = os.fspath(path)
    fd, size = _open_regular(name)
    try:
        yield FileReader(name, fd, size)
    finally:
        os.close(fd)


# The parser module (in modelscan.scanner.formats) of each known format; imported on
# first use so `modelscan --help` stays light.
_PARSERS = {
    Format.SAFETENSORS: "safetensors",
    Format.GGUF: "gguf",
    Format.GGML: "ggml",
    Format.ZIP: "checkpoints",  # torch_zip, or a verdict for a broken checkpoint
    Format.TORCH_LEGACY: "checkpoints",
    Format.PICKLE: "pickle_safe",
    Format.NPY: "npy",
    Format.TAR: "archives",
    Format.SEVEN_ZIP: "archives",
    Format.COMPRESSED: "archives",
}


def read_layout(reader: FileReader, *, any_file: bool = False) -> Layout:
    """Sniff the format and run its parser (headers only)."""
    head = reader.read_at(0, min(HEAD_BYTES, reader.size))
    fmt = detect_format(head, reader.size)
    if fmt in _PARSERS:
        module = importlib.import_module(f"modelscan.scanner.formats.{_PARSERS[fmt]}")
        layout: Layout = module.read_layout(reader)
        return layout
    if any_file:
        return Layout(format=Format.UNKNOWN.value)
    raise UnknownFormat(reader.name, why_unknown(head, reader.size))


def fingerprint(
    path: str | os.PathLike[str],
    *,
    all_hashes: bool = False,
    any_file: bool = False,
    progress: Callable[[int], object] | None = None,
) -> Fingerprint:
    """Compute every identity of one file in one pass (DESIGN.md section 4).

    Args:
        path: a local file.
        all_hashes: also compute whole-file BLAKE3 and CRC-32.
        any_file: hash files of unknown format at file level instead of refusing.
        progress: called with the number of bytes of each chunk read.

    Returns:
        The file's :class:`~modelscan.records.Fingerprint`.

    Raises:
        FormatError: unreadable, unknown, truncated or malformed file.
    """
    with open_reader(path) as reader:
        with gc_paused():  # many small objects per tensor (layout.py), no cycles
            layout = read_layout(reader, any_file=any_file)
        return _compute(reader, layout, all_hashes=all_hashes, progress=progress)


def _compute(
    reader: FileReader,
    layout: Layout,
    *,
    all_hashes: bool,
    progress: Callable[[int], object] | None,
) -> Fingerprint:
    path, size = reader.name, reader.size
    whole = hashing.Sha256Sink()
    autov1_window = hashing.WindowSink(hashing.AUTOV1_OFFSET, hashing.AUTOV1_LENGTH)
    contiguous = [t for t in layout.tensors if t.strides is None]
    groups = _span_groups(contiguous)
    windowed = [(t, w) for t in contiguous if (w := identity.sketch_window(t))]
    sketches = hashing.RangeBytesSink([w for _t, w in windowed])
    body = (
        hashing.Sha256Sink(layout.body_offset)
        if layout.body_offset is not None
        else None
    )
    extra = hashing.Blake3Crc32Sink() if all_hashes else None
    heavy: list[tuple[hashing.Sink, int, float]] = [(whole, size, ring.SHA256_COST)]
    heavy += [(sink, nbytes, ring.BLAKE3_COST) for _g, sink, nbytes in groups]
    if body is not None:
        heavy.append((body, size, ring.SHA256_COST))
    if extra is not None:
        heavy.append((extra, size, ring.BLAKE3_COST + ring.CRC32_COST))
    lanes = _lanes(heavy, size, windows=[autov1_window, sketches])
    try:
        ring.pump(
            reader.fd,
            size,
            lanes,
            threaded=size >= THREADED_MIN_SIZE,
            progress=progress,
        )
    except OSError as exc:
        raise UnreadableFile(path, f"read failed: {exc.strerror or exc}") from exc
    except EOFError as exc:
        raise TruncatedFile(path, str(exc)) from exc

    digests = {
        id(t): digest
        for group, sink, _n in groups
        for t, digest in zip(group, sink.hexdigests(), strict=True)
    }
    seen = {id(t): sketches.value(i) for i, (t, _w) in enumerate(windowed)}
    with gc_paused():  # not while hashing: other threads may need the collector
        tensors = tuple(
            _tensor_record(reader, t, digests, seen) for t in layout.tensors
        )
    sha256 = whole.hexdigest()
    autov1 = hashlib.sha256(autov1_window.value()).hexdigest()[:8]
    autov3 = body.hexdigest() if body is not None else None
    content, weights, structure = _ids(tensors)
    return Fingerprint(
        path=path,
        size=size,
        format=layout.format,
        sha256=sha256,
        autov1=autov1,
        autov2=sha256[:10],
        autov3=autov3,
        blake3=extra.blake3_hex() if extra else None,
        crc32=extra.crc32 if extra else None,
        tensors=tensors,
        content_id=content,
        weights_id=weights,
        structure_id=structure,
        metadata=layout.metadata,
        claims=claims_from_metadata(layout.metadata, autov1=autov1, autov3=autov3),
        pickle_safety=layout.pickle_safety,
    )


def _span_groups(
    tensors: list[TensorSpan],
) -> list[tuple[list[TensorSpan], hashing.SpanDigestSink, int]]:
    """The tensors dealt in turn into SPAN_GROUPS BLAKE3 sinks: (tensors, sink, bytes).

    Several sinks let plan_lanes() put part of the tensor hashing in the lane
    with less work; dealt in turn, each sink has work all along the file, so the
    lanes stay balanced within the ring's slack.
    """
    out = []
    for g in range(SPAN_GROUPS):
        group = tensors[g::SPAN_GROUPS]
        if group:
            sink = hashing.SpanDigestSink(
                [(t.offset, t.offset + t.nbytes) for t in group]
            )
            out.append((group, sink, sum(t.nbytes for t in group)))
    return out


def _lanes(
    heavy: list[tuple[hashing.Sink, int, float]],
    size: int,
    *,
    windows: list[hashing.Sink],
) -> list[list[hashing.Sink]]:
    """Spread the heavy digests (sink, bytes, seconds a GiB) over the cores.

    The cheap windows ride with the reading thread, on bytes it has just read.
    """
    gib = 1 << 30
    return ring.plan_lanes(
        [(nbytes / gib * cost, sink) for sink, nbytes, cost in heavy],
        cores=ring.available_cores(),
        read_cost=size / gib * ring.READ_COST,
        with_reader=windows,
    )


def _tensor_record(
    reader: FileReader,
    span: TensorSpan,
    digests: dict[int, str],
    windows: dict[int, bytes | None],
) -> TensorFingerprint:
    digest = digests.get(id(span))
    if digest is None:
        digest = identity.strided_digest(reader.name, span)
    raw = windows.get(id(span))
    if raw is not None:  # the window streamed by: no second read
        sketch = identity.sketch_from_window(span, raw)
    elif span.numel < identity.SKETCH_MIN_NUMEL:
        sketch = None
    else:
        sketch = identity.read_sketch(reader, span)
    return TensorFingerprint(
        name=span.name,
        dtype=span.dtype,
        shape=span.shape,
        nbytes=span.nbytes,
        digest=digest,
        sketch=sketch,
    )


def _ids(
    tensors: tuple[TensorFingerprint, ...],
) -> tuple[str | None, str | None, str | None]:
    if not tensors:
        return None, None, None
    structure = identity.structure_id((t.name, t.dtype, t.shape) for t in tensors)
    digests = [t.digest for t in tensors]
    if any(d is None for d in digests):  # a remote read: digests need every byte
        return None, None, structure
    rows = [(t.name, t.dtype, t.shape, t.digest or "") for t in tensors]
    return (
        identity.content_id(rows),
        identity.weights_id(d or "" for d in digests),
        structure,
    )


def iter_model_files(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Walk a directory (sorted, no symlinked directories) and yield model files.

    A file is a model file when its magic bytes name a known format; others
    (configs, tokenizers, READMEs) are skipped silently.
    """
    from pathlib import Path

    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fname in sorted(filenames):
            p = Path(dirpath) / fname
            if p.is_file() and _is_model_file(p):
                yield p


def _is_model_file(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
        size = path.stat().st_size
    except OSError:
        return True  # let fingerprint() report the problem
    try:
        return detect_format(head, size) is not Format.UNKNOWN
    except FormatError:
        return True
