"""PyTorch zip checkpoints and TorchScript archives, read without unpickling.

The zip's central directory is parsed here from the end of the file (EOCD,
zip64 locator and record), every count and size bounded by the file size. The
``<prefix>/data.pkl`` member (any prefix folder) is simulated by
:mod:`pickle_safe`; its tensors (see :mod:`torch_legacy` for the rebuild calls
understood and the naming rule) name storages ``<prefix>/data/<key>``, members
stored uncompressed whose bytes are located through their local file headers.
Nothing is inflated except pickle members, streaming and under a size cap.
The safety verdict covers every pickle member, not only data.pkl.

Example:
    >>> layout = read_layout(reader)  # doctest: +SKIP
    >>> layout.format, layout.tensors[0].name, layout.pickle_safety.verdict
    ('torch-zip', 'encoder.weight', 'safe')
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace

from modelscan.errors import (
    FormatError,
    HeaderTooLarge,
    InvalidHeader,
    TruncatedFile,
    UnknownFormat,
)
from modelscan.records import PickleSafety, Record
from modelscan.scanner.formats import pickle_safe
from modelscan.scanner.formats.torch_pickle import (
    TensorRef,
    named_tensors,
    tensor_span,
    top_level_metadata,
)
from modelscan.scanner.layout import (
    MAX_TENSORS,
    Layout,
    RangeReader,
    TensorSpan,
    coalesce,
)

MAX_ZIP_ENTRIES = 2 * MAX_TENSORS  # storages plus TorchScript code and debug pickles
MAX_CENTRAL_DIRECTORY = 256 * 1024 * 1024
_SNIFF_WHOLE = 64 * 1024  # members up to this size may be parsed to sniff a pickle
_CHUNK = 1024 * 1024
_TAIL = 22 + 0xFFFF  # EOCD plus the longest comment
_PREFETCH_GAP = 64 * 1024  # remote: metadata ranges closer than this merge
_PREFETCH_RANGES = 8  # remote: aim for this many metadata requests (gap doubles)
_PREFETCH_SLACK = 512 * 1024  # remote: storage bytes those ranges may take in

_EOCD = struct.Struct("<4sHHHHIIH")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")


# --- the zip container ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False, eq=False)  # Record's methods
class ZipMember(Record):
    """One central-directory entry."""

    name: str
    raw_name: bytes
    method: int  # 0 stored, 8 deflated
    flags: int
    csize: int
    usize: int
    header_offset: int


def _eocd(reader: RangeReader) -> tuple[int, int, int, int]:
    """Return (EOCD offset, entry count, central directory size, its offset)."""
    size = reader.size
    if size < _EOCD.size:
        raise TruncatedFile(reader.name, f"{size} bytes is too short for a zip")
    tail_start = max(0, size - _TAIL)
    tail = reader.read_at(tail_start, size - tail_start)
    i = tail.rfind(b"PK\x05\x06", 0, len(tail) - _EOCD.size + 4)
    if i < 0:
        raise InvalidHeader(reader.name, "no zip end-of-central-directory record")
    _, disk, cd_disk, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, i)
    eocd = tail_start + i
    if disk != 0 or cd_disk != 0:
        raise InvalidHeader(reader.name, "multi-part zip archives are not supported")
    if 0xFFFF in (count,) or 0xFFFFFFFF in (cd_size, cd_offset):
        zip64 = _zip64(reader, eocd)
        if zip64 is not None:
            return zip64
    return eocd, count, cd_size, cd_offset


def _zip64(reader: RangeReader, eocd: int) -> tuple[int, int, int, int] | None:
    """Read the zip64 EOCD record through its locator, if there is one."""
    if eocd < _ZIP64_LOCATOR.size:
        return None
    sig, _, rec, _ = _ZIP64_LOCATOR.unpack(reader.read_at(eocd - 20, 20))
    if sig != b"PK\x06\x07":
        return None
    if rec > eocd - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size:
        raise InvalidHeader(
            reader.name, f"zip64 record offset {rec} is past its locator"
        )
    fields = _ZIP64_EOCD.unpack(reader.read_at(rec, _ZIP64_EOCD.size))
    if fields[0] != b"PK\x06\x06":
        raise InvalidHeader(reader.name, "zip64 locator points at no zip64 record")
    return rec, fields[7], fields[8], fields[9]


def _zip64_extra(extra: bytes, sizes: list[int], where: str) -> list[int]:
    """Replace saturated (0xFFFFFFFF) usize, csize, offset with zip64 extra values."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, n = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + n]
        pos += 4 + n
        if tag != 1:
            continue
        out, at = list(sizes), 0
        for i, v in enumerate(sizes):
            if v == 0xFFFFFFFF:
                if at + 8 > len(body):
                    raise InvalidHeader(where, "zip64 extra field too short")
                (out[i],) = struct.unpack_from("<Q", body, at)
                at += 8
        return out
    return sizes


def read_members(reader: RangeReader) -> list[ZipMember]:
    """Parse the central directory, bounding every count and size by the file.

    Raises:
        InvalidHeader: no EOCD, bad signatures, duplicate names, sizes past the end.
        HeaderTooLarge: more entries or directory bytes than the caps allow.
    """
    where = reader.name
    eocd, count, cd_size, cd_offset = _eocd(reader)
    if count > MAX_ZIP_ENTRIES or cd_size > MAX_CENTRAL_DIRECTORY:
        raise HeaderTooLarge(where, f"zip claims {count} entries in {cd_size} bytes")
    if cd_offset + cd_size > eocd:
        reason = f"central directory at {cd_offset} (+{cd_size}) runs past {eocd}"
        raise InvalidHeader(where, reason)
    if count * _CENTRAL.size > cd_size:
        raise InvalidHeader(
            where, f"central directory of {cd_size} bytes cannot hold {count} entries"
        )
    cd = reader.read_at(cd_offset, cd_size)
    members: list[ZipMember] = []
    names: set[str] = set()
    pos = 0
    for _ in range(count):
        if pos + _CENTRAL.size > len(cd):
            raise InvalidHeader(where, "central directory ends inside an entry")
        f = _CENTRAL.unpack_from(cd, pos)
        if f[0] != b"PK\x01\x02":
            raise InvalidHeader(
                where, f"bad central directory entry at offset {cd_offset + pos}"
            )
        nlen, elen, clen = f[10], f[11], f[12]
        raw = cd[pos + 46 : pos + 46 + nlen]
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + elen]
        pos += 46 + nlen + elen + clen
        if pos > len(cd):
            raise InvalidHeader(
                where, "central directory entry runs past the directory"
            )
        usize, csize, offset = _zip64_extra(extra, [f[9], f[8], f[16]], where)
        name = raw.decode("utf-8" if f[3] & 0x800 else "cp437", "replace")
        if name in names:
            raise InvalidHeader(where, f"zip member {name!r} appears twice")
        if offset + csize > eocd:
            raise InvalidHeader(where, f"zip member {name!r} runs past the archive")
        names.add(name)
        members.append(ZipMember(name, raw, f[4], f[3], csize, usize, offset))
    return members


def data_offset(reader: RangeReader, m: ZipMember) -> int:
    """Absolute offset of a member's bytes, from its local file header."""
    if m.header_offset + _LOCAL.size > reader.size:
        raise TruncatedFile(reader.name, f"local header of {m.name!r} is past the end")
    f = _LOCAL.unpack(reader.read_at(m.header_offset, _LOCAL.size))
    if f[0] != b"PK\x03\x04":
        raise InvalidHeader(
            reader.name, f"no local header for {m.name!r} at {m.header_offset}"
        )
    start = m.header_offset + _LOCAL.size
    if start + f[9] > reader.size or reader.read_at(start, f[9]) != m.raw_name:
        raise InvalidHeader(reader.name, f"local header name differs for {m.name!r}")
    offset = start + f[9] + f[10]
    if offset + m.csize > reader.size:
        raise TruncatedFile(reader.name, f"member {m.name!r} ends past the file")
    return offset


def _inflate(reader: RangeReader, m: ZipMember, limit: int, *, strict: bool) -> bytes:
    """Inflate at most ``limit`` bytes of a deflated member, streaming.

    With ``strict`` a member that inflates past ``limit`` raises HeaderTooLarge
    (a zip bomb is refused after ``limit`` bytes, never inflated in full);
    otherwise its first ``limit`` bytes are returned.
    """
    pos = data_offset(reader, m)
    end = pos + m.csize
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    try:
        while not d.eof:
            chunk = d.unconsumed_tail
            if not chunk:
                if pos >= end:
                    raise TruncatedFile(
                        reader.name, f"deflate data of {m.name!r} ends early"
                    )
                chunk = reader.read_at(pos, min(_CHUNK, end - pos))
                pos += len(chunk)
            out += d.decompress(chunk, limit + 1 - len(out))
            if len(out) > limit or (not strict and len(out) >= limit):
                if strict:
                    raise HeaderTooLarge(
                        reader.name, f"{m.name!r} inflates past the {limit}-byte cap"
                    )
                return bytes(out[:limit])
    except zlib.error as exc:
        raise InvalidHeader(
            reader.name, f"bad deflate data in {m.name!r}: {exc}"
        ) from exc
    return bytes(out)


def read_member(
    reader: RangeReader, m: ZipMember, limit: int, *, strict: bool = True
) -> bytes:
    """Return a member's bytes (its first ``limit`` bytes unless ``strict``)."""
    if m.flags & 1:
        raise InvalidHeader(reader.name, f"member {m.name!r} is encrypted")
    if m.method == 8:
        return _inflate(reader, m, limit, strict=strict)
    if m.method != 0:
        raise InvalidHeader(
            reader.name, f"member {m.name!r} uses compression method {m.method}"
        )
    if strict and m.csize > limit:
        raise HeaderTooLarge(reader.name, f"{m.name!r} is over the {limit}-byte cap")
    return reader.read_at(data_offset(reader, m), min(m.csize, limit))


# --- the checkpoint -------------------------------------------------------------------


def _find_data_pkl(members: list[ZipMember], where: str) -> ZipMember:
    found = [
        m
        for m in members
        if m.name.endswith("data.pkl")
        and m.name.rsplit("/", 1)[-1] == "data.pkl"
        and m.name.count("/") <= 1
    ]
    if not found:
        raise UnknownFormat(
            where, "a zip archive but not a PyTorch checkpoint (no data.pkl)"
        )
    if len(found) > 1:
        raise InvalidHeader(
            where, f"several data.pkl members: {[m.name for m in found]}"
        )
    return found[0]


def _small_text(reader: RangeReader, m: ZipMember | None) -> str | None:
    if m is None:
        return None
    return read_member(reader, m, 64, strict=False).decode("ascii", "replace").strip()


def _named_pickle(m: ZipMember) -> bool:
    return m.name.endswith(("pkl", ".pickle"))  # data.pkl, constants.pkl, *.debug_pkl


def _sniffs_as_pickle(reader: RangeReader, m: ZipMember) -> bool:
    """Its first bytes read as a pickle opcode stream (any protocol)."""
    if m.usize < 2 or m.name.endswith("/"):
        return False
    head = read_member(reader, m, min(m.usize, _SNIFF_WHOLE), strict=False)
    return pickle_safe.sniff_pickle(head, m.usize)


def _member_globals(
    reader: RangeReader, m: ZipMember, budget: int
) -> tuple[set[str], int, str]:
    """Globals of one pickle member, bytes it used, and why it could not be read."""
    try:
        if not (_named_pickle(m) or _sniffs_as_pickle(reader, m)):
            return set(), 0, ""
        data = read_member(reader, m, budget)
    except FormatError as exc:
        return set(), 0, exc.reason
    result, seen, reason = pickle_safe.walk_partial(
        data, path=f"{reader.name}:{m.name}"
    )
    return seen, len(data), "" if result is not None else f"not a pickle: {reason}"


def _archive_safety(
    reader: RangeReader,
    members: list[ZipMember],
    skip: set[str],
    first: tuple[str, ...],
    *,
    limit: int,
    torchscript: bool,
) -> PickleSafety:
    """Union of the globals of every pickle member besides data.pkl.

    A member named like a pickle that cannot be read (a zip bomb over the cap,
    a broken pickle) makes the verdict unsafe: nothing can vouch for it. One
    that merely starts like a pickle and fails is most likely raw data: noted.
    """
    globals_ = set(first)
    notes = ["TorchScript archive: loading runs its code/"] if torchscript else []
    unreadable = False
    for m in members:
        if m.name in skip:
            continue
        seen, used, problem = _member_globals(reader, m, limit)
        globals_ |= seen
        limit -= used
        if problem:
            notes.append(f"{m.name}: {problem}")
            unreadable = unreadable or _named_pickle(m)
    if torchscript:
        classes = sorted(g for g in globals_ if g.startswith(_TORCHSCRIPT_CLASS))
        globals_ -= set(classes)
        notes += _torchscript_notes(members, classes)
    verdict = pickle_safe.safety(globals_, notes=notes)
    return replace(verdict, verdict="unsafe") if unreadable or torchscript else verdict


_TORCHSCRIPT_CLASS = "__torch__."


def _torchscript_notes(members: list[ZipMember], classes: list[str]) -> list[str]:
    """What a TorchScript archive's ``__torch__`` names and ``code/`` section are.

    ``__torch__.*`` names are classes torch.jit.load compiles from the
    archive's ``code/`` (TorchScript source), not Python modules it imports.
    """
    code = [m for m in members if "/code/" in f"/{m.name}" and not m.name.endswith("/")]
    sources = [m for m in code if m.name.endswith(".py")]
    shown = ", ".join(c.removeprefix(_TORCHSCRIPT_CLASS) for c in classes[:8])
    more = f" and {len(classes) - 8} more" if len(classes) > 8 else ""
    out = (
        [
            f"TorchScript classes compiled from code/, not Python imports: "
            f"{len(classes)} ({shown}{more})"
        ]
        if classes
        else []
    )
    out.append(
        f"code/ holds {len(sources)} TorchScript sources "
        f"({sum(m.usize for m in sources):,} bytes) and {len(code) - len(sources)} "
        "other files (debug pickles, constants)"
    )
    return out


def _next_starts(reader: RangeReader, members: list[ZipMember]) -> dict[str, int]:
    """Where the bytes after each member begin: the next local header or the CD."""
    _eocd_at, _count, _cd_size, cd_offset = _eocd(reader)
    ordered = sorted(members, key=lambda m: m.header_offset)
    starts = [m.header_offset for m in ordered[1:]] + [cd_offset]
    return {m.name: nxt for m, nxt in zip(ordered, starts, strict=True)}


def _torch_data_offset(m: ZipMember, next_start: int) -> int | None:
    """A member's data offset without reading its local header, when certain.

    PyTorch's writer (caffe2/serialize/inline_container.cc, ``getPadding``)
    pads the local extra field ("FB" + padding) so data starts at a multiple of
    64 after a 30-byte header, the name and the 4-byte extra header (plus zip64
    fields for members or offsets past 4 GiB), and writes a data descriptor
    after the data when flag bit 3 is set. The offset is trusted only when that
    prediction ends the data exactly at the next member (or the CD) less a
    descriptor of a legal size; otherwise the caller reads the local header.
    """
    start = m.header_offset + _LOCAL.size + len(m.raw_name) + 4
    big_size, big_offset = m.csize >= 0xFFFFFFFF, m.header_offset >= 0xFFFFFFFF
    if big_size or big_offset:
        start += 4 + (16 if big_size else 0) + (8 if big_offset else 0)
    predicted = -(-start // 64) * 64
    descriptor = next_start - predicted - m.csize
    allowed = (12, 16, 20, 24) if m.flags & 8 else (0,)
    return predicted if descriptor in allowed else None


def _prefetch_metadata(
    reader: RangeReader, members: list[ZipMember], prefix: str, ends: dict[str, int]
) -> None:
    """Tell a remote reader the ranges the checkpoint's metadata lies in.

    Every member but the tensor storages (pickles, code, version, byteorder)
    is read by the safety walk; their local headers and bytes are fetched in a
    few coalesced ranges, never the storages between them when far apart.
    """
    prefetch = getattr(reader, "prefetch", None)
    if prefetch is None:
        return
    storage = prefix + "data/"
    ranges = []
    for m in members:
        if m.name.startswith(storage):
            continue
        whole = _named_pickle(m) or m.usize <= _SNIFF_WHOLE
        end = ends[m.name] if whole else m.header_offset + _LOCAL.size + 1024
        ranges.append((m.header_offset, min(ends[m.name], end)))
    # Fewer, longer ranges while the storage bytes they take in stay small.
    allowed = sum(e - s for s, e in coalesce(ranges, 0)) + _PREFETCH_SLACK
    gap = _PREFETCH_GAP
    merged = coalesce(ranges, gap)
    while len(merged) > _PREFETCH_RANGES:
        wider = coalesce(ranges, gap * 2)
        if sum(e - s for s, e in wider) > allowed:
            break
        gap, merged = gap * 2, wider
    prefetch(merged)


def _storage_spans(
    reader: RangeReader,
    by_name: dict[str, ZipMember],
    prefix: str,
    named: list[tuple[str, TensorRef]],
    ends: dict[str, int] | None = None,
) -> list[TensorSpan]:
    """Locate each tensor in its ``<prefix>/data/<key>`` member.

    With ``ends`` (a remote read) offsets come from :func:`_torch_data_offset`
    where it is certain, saving a local-header read per storage.
    """
    where = reader.name
    spans = []
    offsets: dict[str, int] = {}
    for name, t in named:
        member = f"{prefix}data/{t.storage.key}"
        m = by_name.get(member)
        if m is None:
            raise InvalidHeader(where, f"tensor {name!r}: storage {member} is missing")
        if m.method != 0 or m.csize != m.usize:
            reason = f"tensor {name!r}: storage {member} is compressed (torch never is)"
            raise InvalidHeader(where, reason)
        if member not in offsets:
            guess = _torch_data_offset(m, ends[member]) if ends else None
            offsets[member] = guess if guess is not None else data_offset(reader, m)
        spans.append(
            tensor_span(
                name,
                t,
                data_offset=offsets[member],
                storage_nbytes=m.usize,
                where=where,
            )
        )
    return spans


def _byteorder(reader: RangeReader, m: ZipMember | None) -> str:
    """The archive's byteorder member (absent before torch 1.12: little-endian)."""
    byteorder = _small_text(reader, m) or "little"
    if byteorder != "little":
        reason = f"byteorder {byteorder!r}: only little-endian checkpoints are read"
        raise InvalidHeader(reader.name, reason)
    return byteorder


def read_layout(
    reader: RangeReader,
    *,
    max_pickle_bytes: int = pickle_safe.MAX_PICKLE_BYTES,
    remote: bool = False,
) -> Layout:
    """Read a torch zip checkpoint or TorchScript archive without unpickling it.

    Args:
        reader: the file.
        max_pickle_bytes: cap on the bytes of data.pkl and of all other pickle
            members together (inflated size for compressed ones).
        remote: read as few ranges as possible: prefetch the metadata members
            in coalesced ranges and locate storages without their local headers
            where PyTorch's alignment makes that certain.

    Returns:
        A ``Layout`` with format ``torch-zip`` or ``torchscript``, one span per
        tensor, metadata and the safety verdict over every pickle member.

    Raises:
        UnknownFormat: a zip without data.pkl.
        InvalidHeader: a broken zip or pickle, a missing, compressed or too short
            storage, a big-endian archive.
        TruncatedFile, HeaderTooLarge: as their names say.
    """
    members = read_members(reader)
    by_name = {m.name: m for m in members}
    try:
        data_pkl = _find_data_pkl(members, reader.name)
    except UnknownFormat:  # any other zip: its members may still hold pickles
        from modelscan.scanner.formats import archives

        return archives.zip_layout(reader)
    prefix = data_pkl.name[: -len("data.pkl")]
    ends = _next_starts(reader, members) if remote else None
    if ends is not None:
        _prefetch_metadata(reader, members, prefix, ends)
    code = prefix + "code/"
    torchscript = prefix + "constants.pkl" in by_name or any(
        n.startswith(code) for n in by_name
    )
    byteorder = _byteorder(reader, by_name.get(prefix + "byteorder"))
    data = read_member(reader, data_pkl, max_pickle_bytes)
    where = f"{reader.name}:{data_pkl.name}"
    result = pickle_safe.walk_pickle(data, path=where)
    named, everything, metadata = named_tensors(result.root, where=where)
    spans = _storage_spans(reader, by_name, prefix, named, ends)
    skip = {data_pkl.name} | {f"{prefix}data/{k}" for k in everything.storages}
    safety = _archive_safety(
        reader,
        members,
        skip,
        result.globals,
        limit=max_pickle_bytes - len(data),
        torchscript=torchscript,
    )
    metadata.update(top_level_metadata(result.root))
    metadata["torch.byteorder"] = byteorder
    version = _small_text(reader, by_name.get(prefix + "version"))
    if version:
        metadata["torch.archive_version"] = version
    return Layout(
        format="torchscript" if torchscript else "torch-zip",
        tensors=tuple(spans),
        metadata=metadata,
        pickle_safety=safety,
    )
