"""Pickles inside archives: zip (any member), tar, 7z, compressed streams, nested.

A loader reaches a pickle inside an archive in many ways (``numpy.load`` of an
``.npz``, ``joblib.load`` of a compressed file, a tool that unpacks a tar or 7z
and loads what it finds), so every member is sniffed by its bytes, never its
name: pickles are walked (:func:`pickle_safe.scan_pickles`), ``.npy`` object
arrays give their pickle, and zips, tars, 7z archives and gzip/bz2/xz/lzma/zlib
streams are opened in turn, down to ``MAX_DEPTH`` levels. Every member read is
bounded (``MEMBER_CAP`` bytes each, ``TOTAL_CAP`` for the file); a member that
looks like a pickle but cannot be read whole makes the verdict unsafe, with the
reason as its ``error``. 7z is read with py7zr, imported only for 7z files.

Example:
    >>> layout = read_layout(reader)  # doctest: +SKIP
    >>> layout.format, layout.pickle_safety.dangerous
    ('7z', ('os.system',))
"""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from modelscan.errors import FormatError, UnknownFormat
from modelscan.records import PickleSafety, Record
from modelscan.scanner.formats import npy, pickle_safe
from modelscan.scanner.layout import BytesReader, Layout, RangeReader
from modelscan.scanner.sniff import HEAD_BYTES, Format, compression_of, detect_format

MAX_DEPTH = 4  # archives inside archives
MAX_MEMBERS = 10_000  # members looked at in one file, every level counted
MEMBER_CAP = 64 << 20  # bytes of one member held in memory
TOTAL_CAP = 256 << 20  # bytes of all members read from one file
MAX_ERRORS = 5
_CHUNK = 1 << 20

_ARCHIVES = {Format.ZIP: "zip", Format.TAR: "tar", Format.SEVEN_ZIP: "7z"}
_PICKLES = (Format.PICKLE, Format.TORCH_LEGACY)


@dataclass(slots=True)
class _Found:
    """What the members of one file add up to."""

    globals: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dangers: set[str] = field(default_factory=set)
    pickles: list[str] = field(default_factory=list)
    arrays: list[str] = field(default_factory=list)
    members: int = 0
    budget: int = TOTAL_CAP
    root: str = ""  # the file's own name, left out of member names

    def rel(self, where: str) -> str:
        """A member's name inside the file (``inner.zip:a/b.pkl``)."""
        return where.removeprefix(self.root + ":").removeprefix(self.root)

    def error(self, where: str, reason: str) -> None:
        self.errors.append(f"{self.rel(where) or 'file'}: {reason}")

    def add_scan(self, where: str, scan: pickle_safe.PickleScan) -> None:
        where = self.rel(where)
        self.pickles.append(where)
        verdict = scan.verdict()
        self.globals.update(verdict.globals)
        self.dangers.update(verdict.dangerous)  # judged per member, with its uses
        if verdict.dangerous:
            self.notes.append(f"{where}: {', '.join(verdict.dangerous)}")
        self.notes.extend(f"{where}: {n}" for n in scan.notes)
        if scan.error:
            self.error(where, scan.error)

    def verdict(self, notes: list[str]) -> PickleSafety:
        errors = self.errors[:MAX_ERRORS]
        more = len(self.errors) - len(errors)
        error = "; ".join(errors) + (f"; and {more} more" if more > 0 else "")
        return pickle_safe.safety(
            self.globals,
            notes=notes + self.notes,
            error=error or None,
            extra_dangerous=self.dangers,
            vetted=self.globals,  # members' dangers are already in self.dangers
        )


# --- one blob of bytes ----------------------------------------------------------------


def _scan_data(data: bytes, where: str, found: _Found, depth: int) -> str | None:
    """Scan one member's bytes; return what it was (pickle, npy, zip, ...) or None."""
    fmt = detect_format(data[:HEAD_BYTES], len(data))
    reader = BytesReader(data, where)
    if fmt in _PICKLES:
        found.add_scan(where, pickle_safe.scan_pickles(reader, depth=depth))
        return "pickle"
    if fmt is Format.NPY:
        _scan_npy(reader, where, found, depth)
        return "npy"
    if fmt in _ARCHIVES or fmt is Format.COMPRESSED:
        if depth >= MAX_DEPTH:
            found.error(where, f"archive nested deeper than {MAX_DEPTH}: not opened")
            return fmt.value
        return _scan_container(reader, fmt, found, depth + 1)
    return None


def _scan_npy(reader: RangeReader, where: str, found: _Found, depth: int) -> None:
    head = reader.read_at(0, min(reader.size, npy.MAX_HEADER_BYTES + 12))
    try:
        header = npy.parse_header(head, where=where, size=reader.size)
    except FormatError as exc:
        found.error(where, exc.reason)
        return
    found.arrays.append(found.rel(where))
    if header.has_objects:
        scan = pickle_safe.scan_pickles(reader, start=header.data_offset, depth=depth)
        found.add_scan(where, scan)


@dataclass(frozen=True, slots=True, repr=False, eq=False)  # Record's methods
class _Member(Record):
    """One archive member: its whole bytes, or (too big to hold) its first bytes."""

    where: str
    data: bytes
    whole: bool


def _scan_container(reader: RangeReader, fmt: Format, found: _Found, depth: int) -> str:
    """Open a zip, tar, 7z or compressed stream and scan each member."""
    where = reader.name
    if fmt is Format.COMPRESSED:
        return _scan_compressed(reader, found, depth)
    try:
        for m in _members(reader, fmt, found):
            _scan_member(m, found, depth)
    except FormatError as exc:
        found.error(where, exc.reason)
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError) as exc:
        found.error(where, f"broken {fmt.value} archive: {exc}")
    return fmt.value


def _scan_member(m: _Member, found: _Found, depth: int) -> None:
    if m.whole:
        _scan_data(m.data, m.where, found, depth)
        return
    fmt = detect_format(m.data[:HEAD_BYTES], len(m.data) + 1)
    if fmt in _PICKLES or fmt in _ARCHIVES or fmt in (Format.NPY, Format.COMPRESSED):
        found.error(m.where, f"a {fmt.value} too large to read whole: not scanned")


def _take(found: _Found, size: int) -> bool:
    """Whether a member of ``size`` bytes may be read whole (and count it)."""
    found.members += 1
    if size > MEMBER_CAP or size > found.budget:
        return False
    found.budget -= size
    return True


def _members(reader: RangeReader, fmt: Format, found: _Found) -> Iterator[_Member]:
    if fmt is Format.ZIP:
        yield from _zip_members(reader, found)
    elif fmt is Format.TAR:
        yield from _tar_members(reader, found)
    else:
        yield from _seven_zip_members(reader, found)


def _zip_members(reader: RangeReader, found: _Found) -> Iterator[_Member]:
    from modelscan.scanner.formats import torch_zip

    for m in torch_zip.read_members(reader)[: max(0, MAX_MEMBERS - found.members)]:
        if m.name.endswith("/"):
            continue
        where = f"{reader.name}:{m.name}"
        whole = _take(found, m.usize)
        try:
            data = torch_zip.read_member(
                reader, m, MEMBER_CAP if whole else HEAD_BYTES, strict=whole
            )
        except FormatError as exc:
            found.error(where, exc.reason)
            continue
        yield _Member(where, data, whole)


def _tar_members(reader: RangeReader, found: _Found) -> Iterator[_Member]:
    with tarfile.open(fileobj=_open(reader), mode="r:") as tar:
        for info in tar:
            if found.members >= MAX_MEMBERS:
                found.error(reader.name, f"over {MAX_MEMBERS} members: rest not read")
                return
            if not info.isfile():
                continue
            f = tar.extractfile(info)
            if f is None:
                continue
            whole = _take(found, info.size)
            data = f.read(info.size if whole else HEAD_BYTES)
            yield _Member(f"{reader.name}:{info.name}", data, whole)


def _seven_zip_members(reader: RangeReader, found: _Found) -> Iterator[_Member]:
    import py7zr  # only 7z files pay for the import
    from py7zr.io import BytesIOFactory

    try:
        with py7zr.SevenZipFile(_open(reader), mode="r") as z:
            if z.needs_password():
                found.error(reader.name, "7z archive needs a password: not scanned")
                return
            files = [i for i in z.list() if not i.is_directory]
            infos = _within_budget(files, found, reader.name)
            factory = BytesIOFactory(MEMBER_CAP + 1)
            if infos:  # solid blocks decompress in full: only members that fit
                z.extract(targets=[i.filename for i in infos], factory=factory)
    except (py7zr.exceptions.ArchiveError, lzma.LZMAError) as exc:
        found.error(reader.name, f"broken 7z archive: {exc}")
        return
    for info in infos:
        if info.filename not in factory.products:
            continue
        out = factory.get(info.filename)
        out.seek(0)
        yield _Member(f"{reader.name}:{info.filename}", out.read(), True)


def _within_budget(infos: list[Any], found: _Found, where: str) -> list[Any]:
    """The 7z members to decompress; each one left out is an error (unread)."""
    chosen = []
    for info in infos[: max(0, MAX_MEMBERS - found.members)]:
        if _take(found, info.uncompressed):
            chosen.append(info)
        else:
            size = f"{info.uncompressed:,}"
            found.error(f"{where}:{info.filename}", f"{size} bytes: too large to scan")
    return chosen


# --- compressed streams ---------------------------------------------------------------


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "zlib":
        return zlib.decompressobj()
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor(lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE)


def _stream(reader: RangeReader, kind: str, limit: int) -> tuple[bytes, bool]:
    """Decompress 1 MiB of input at a time until ``limit + 1`` bytes or the end.

    Returns the bytes and whether the stream ended properly.
    """
    d = _decompressor(kind)
    zlib_like = kind in ("gzip", "zlib")
    out = bytearray()
    pos = 0
    while len(out) <= limit and not d.eof:
        data = d.unconsumed_tail if zlib_like else b""
        if (zlib_like and not data) or (not zlib_like and d.needs_input):
            if pos >= reader.size:
                return bytes(out), False
            data = reader.read_at(pos, min(_CHUNK, reader.size - pos))
            pos += len(data)
        out += d.decompress(data, limit + 1 - len(out))
    return bytes(out), True


def _inflate(reader: RangeReader, kind: str, found: _Found) -> bytes:
    """Decompress at most ``MEMBER_CAP`` bytes; past that the rest is unread."""
    where = reader.name
    limit = min(MEMBER_CAP, found.budget)
    try:
        out, ended = _stream(reader, kind, limit)
    except (zlib.error, OSError, lzma.LZMAError, EOFError) as exc:
        found.error(where, f"broken {kind} stream: {exc}")
        return b""
    if not ended:
        found.error(where, f"{kind} stream ends early (cut file)")
    if len(out) > limit:
        found.error(where, f"decompresses past {limit} bytes: only those were read")
        out = out[:limit]
    found.budget -= len(out)
    return out


def _scan_compressed(reader: RangeReader, found: _Found, depth: int) -> str:
    kind = compression_of(reader.read_at(0, min(reader.size, 4096))) or "zlib"
    data = _inflate(reader, kind, found)
    where = f"{reader.name}:<{kind} stream>"
    inner = _scan_data(data, where, found, depth) if data else None
    return f"{kind}+{inner}" if inner else kind


def _open(reader: RangeReader) -> io.BufferedReader:
    return io.BufferedReader(_ReaderFile(reader), 1 << 20)


class _ReaderFile(io.RawIOBase):
    """A seekable read-only file over a :class:`RangeReader`, for tarfile and py7zr."""

    def __init__(self, reader: RangeReader) -> None:
        self._reader = reader
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._reader.size}
        self._pos = max(0, base[whence] + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self._reader.size - self._pos))
        buffer[:n] = self._reader.read_at(self._pos, n)
        self._pos += n
        return n


# --- layouts --------------------------------------------------------------------------


def _layout(reader: RangeReader, kind: str, found: _Found, notes: list[str]) -> Layout:
    """The layout of a scanned container; refused when it holds nothing we know."""
    if not found.pickles and not found.arrays and not found.errors:
        raise UnknownFormat(
            reader.name, f"{notes[0] if notes else kind}, holding no pickle or array"
        )
    metadata: dict[str, Any] = {"archive.members": found.members}
    if found.pickles:
        metadata["archive.pickles"] = found.pickles[:50]
    if found.arrays:
        metadata["archive.arrays"] = len(found.arrays)
    safety = None
    if found.pickles or found.errors:
        safety = found.verdict([])
    return Layout(format=kind, metadata=metadata, pickle_safety=safety)


def scan_blob(data: bytes, *, where: str, depth: int) -> PickleSafety | None:
    """The verdict over a file held in memory (bytes a pickle gives a loader).

    Returns None when the bytes hold no pickle and nothing failed.
    """
    found = _Found(root=where)
    _scan_data(data, where, found, depth)
    return found.verdict([]) if found.pickles or found.errors else None


def zip_layout(reader: RangeReader) -> Layout:
    """A zip that is no torch checkpoint: ``npz`` when its members are arrays.

    Raises:
        UnknownFormat: no member holds a pickle or an array.
    """
    found = _Found(root=reader.name)
    _scan_container(reader, Format.ZIP, found, 1)
    only_arrays = found.arrays and len(found.arrays) == found.members
    kind = "npz" if only_arrays else "zip"
    why = "a zip archive but not a PyTorch checkpoint (no data.pkl)"
    return _layout(reader, kind, found, [why])


def read_layout(reader: RangeReader) -> Layout:
    """Read a tar, 7z or compressed file: the verdict over every pickle inside.

    Returns:
        A ``Layout`` with format ``tar``, ``7z`` or ``<compression>+<inner>``
        (``gzip+pickle`` for a gzip-compressed joblib file), metadata on the
        members, and ``pickle_safety`` when any pickle was found.

    Raises:
        UnknownFormat: the file holds no pickle or array.
    """
    head = reader.read_at(0, min(reader.size, HEAD_BYTES))
    fmt = detect_format(head, reader.size)
    found = _Found(root=reader.name)
    kind = _scan_container(reader, fmt, found, 1)
    return _layout(reader, kind, found, [f"a {kind} file"])
