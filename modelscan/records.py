"""Frozen records passed between the layers (scanner, registry, db, CLI).

Every layer speaks these types: the scanner returns a :class:`Fingerprint`, host
modules yield :class:`Listing` records, and ``db/`` stores both.

Example:
    >>> RemoteFile(path="model.safetensors", size=12, sha256=None, url="https://h/x")
    RemoteFile(path='model.safetensors', size=12, sha256=None, url='https://h/x', ...)
"""

from __future__ import annotations

import binascii
import reprlib
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

# --- the methods every record shares ---------------------------------------------


class Record:
    """The ``__repr__``, ``__eq__`` and ``__hash__`` of a frozen dataclass, once.

    Each record below is ``@dataclass(frozen=True, slots=True, repr=False,
    eq=False)`` over this class: dataclasses compiles every method it generates
    when the module is imported (six for a frozen class: a twentieth of
    ``modelscan fingerprint``'s start-up for these eight), while these three are
    compiled once, into the .pyc. They behave as the generated ones do: fields in
    order, equal only to an instance of the same class, hashed as the tuple of
    the fields.
    """

    __slots__ = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, f.name) for f in fields(self)])  # type: ignore[arg-type]

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        """``Name(field=value, ...)``, as dataclasses spells it."""
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)]  # type: ignore[arg-type]
        return f"{self.__class__.__qualname__}({', '.join(shown)})"

    def __eq__(self, other: object) -> bool:
        """Field by field, against an instance of the same class only."""
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        """The hash of the tuple of fields."""
        return hash(self._values())


# --- fingerprints (scanner -> db, CLI) -----------------------------------------------


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class TensorFingerprint(Record):
    """One tensor's identity: where it is named, what it holds, and a sketch."""

    name: str
    dtype: str  # safetensors spelling (F32, BF16, I64, ...) or a GGML type (Q4_1, ...)
    shape: tuple[int, ...]  # row-major, outermost first (GGUF's ne reversed)
    nbytes: int  # bytes of the tensor's logical data
    # BLAKE3 hex of the logical bytes (contiguous, little-endian); None for a
    # remote fingerprint, which reads a few ranges, not every byte
    digest: str | None
    sketch: bytes | None = None  # 256 float16 LE values, or None (DESIGN.md section 4)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form: sketch as base64 of its float16 bytes."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "nbytes": self.nbytes,
            "digest": self.digest,
            "sketch": _base64(self.sketch) if self.sketch else None,
        }


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Claim(Record):
    """A hash or identity that a file states about itself or its parent."""

    key: str  # where it was found, e.g. "ss_sd_model_hash", "general.base_model.0.name"
    value: str
    meaning: (
        str  # what the value identifies: "autov3-of-this-file", "autov1-of-base", ...
    )
    verified: (
        bool | None
    )  # True/False when the file can confirm it, None when it cannot

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "key": self.key,
            "value": self.value,
            "meaning": self.meaning,
            "verified": "unknown" if self.verified is None else self.verified,
        }


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class PickleSafety(Record):
    """What loading a pickle would import, judged against an allowlist."""

    verdict: str  # "safe" | "unsafe"
    globals: tuple[str, ...]  # every module.name a real unpickler would import
    dangerous: tuple[str, ...]  # the subset that is known to run code or touch the OS
    notes: tuple[str, ...] = ()
    # why a pickle could not be read to its end: the verdict covers what came before
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "globals": list(self.globals),
            "dangerous": list(self.dangerous),
        }
        if self.notes:
            out["notes"] = list(self.notes)
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class RemoteSource(Record):
    """Where a remote fingerprint was read from and what reading it cost."""

    url: str  # what the user named: hf://..., civitai://..., or the https URL
    requests: int  # HTTP requests sent, resolves and retries included
    bytes: int  # body bytes received
    whole: bool = False  # small enough that every byte was read

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "url": self.url,
            "requests": self.requests,
            "bytes": self.bytes,
            "whole": self.whole,
        }


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Fingerprint(Record):
    """Everything computed for one file in one pass (DESIGN.md section 4).

    A remote fingerprint (``remote`` set) holds what its ranges determine:
    ``sha256`` is the host's ("" when the host states none), tensor digests,
    ``content_id``, ``weights_id`` and ``autov3`` are None unless the whole file
    was read, and only a subset of tensors has a sketch.
    """

    path: str
    size: int
    format: str  # scanner.sniff.Format value: "safetensors", "gguf", "torch-zip", ...
    sha256: str
    autov1: str  # A1111 old hash: 8 hex; "e3b0c442" for files under 1 MiB
    autov2: str  # first 10 hex of sha256
    autov3: str | None  # full SHA-256 hex of a safetensors body; Civitai shows 12
    blake3: str | None = None  # whole file, only with --all-hashes
    crc32: int | None = None  # zlib CRC-32 of the whole file, only with --all-hashes
    tensors: tuple[TensorFingerprint, ...] = ()
    content_id: str | None = None
    weights_id: str | None = None
    structure_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    claims: tuple[Claim, ...] = ()
    pickle_safety: PickleSafety | None = None
    remote: RemoteSource | None = None  # set when read through HTTP Range requests

    @property
    def parameter_count(self) -> int:
        """Number of elements over all tensors."""
        total = 0
        for t in self.tensors:
            n = 1
            for d in t.shape:
                n *= d
            total += n
        return total

    def civitai_hashes(self) -> dict[str, str | None]:
        """Return the hashes in Civitai's spelling, ready to paste into its search."""
        spelled = civitai_spelling(
            size=self.size,
            sha256=self.sha256,
            autov1=self.autov1,
            autov3=self.autov3,
            crc32=self.crc32,
            blake3=self.blake3,
        )
        return {k: v or None for k, v in spelled.items()}  # "" sha256: unknown

    def to_json(self, *, with_tensors: bool = True) -> dict[str, Any]:
        """Return the stable JSON record documented in README."""
        out: dict[str, Any] = {
            "path": self.path,
            "size": self.size,
            "format": self.format,
            "sha256": self.sha256 or None,
            "autov1": self.autov1,
            "autov2": self.autov2 or None,
            "autov3": self.autov3,
            "blake3": self.blake3,
            "crc32": f"{self.crc32:08x}" if self.crc32 is not None else None,
            "civitai": self.civitai_hashes(),
            "content_id": self.content_id,
            "weights_id": self.weights_id,
            "structure_id": self.structure_id,
            "tensor_count": len(self.tensors),
            "parameter_count": self.parameter_count,
            "metadata": self.metadata,
            "claims": [c.to_json() for c in self.claims],
            "pickle_safety": self.pickle_safety.to_json()
            if self.pickle_safety
            else None,
        }
        if with_tensors:
            out["tensors"] = [t.to_json() for t in self.tensors]
        if self.remote is not None:
            out["remote"] = self.remote.to_json()
        return out


def _base64(raw: bytes) -> str:
    """``base64.b64encode(raw).decode()``, without importing base64."""
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


CIVITAI_AUTOV1_MIN_SIZE = 2 * 1024 * 1024  # Civitai publishes no AutoV1 below this


def civitai_crc32(crc: int) -> str:
    """Spell a zlib CRC-32 as Civitai prints it: the four bytes reversed, upper case.

    >>> civitai_crc32(0x0D4A1185)
    '85114A0D'
    """
    return crc.to_bytes(4, "little").hex().upper()


def crc32_from_civitai(text: str) -> int:
    """Invert :func:`civitai_crc32`.

    >>> hex(crc32_from_civitai("85114A0D"))
    '0xd4a1185'
    """
    return int.from_bytes(bytes.fromhex(text), "little")


def civitai_spelling(
    *,
    size: int,
    sha256: str,
    autov1: str,
    autov3: str | None,
    crc32: int | None,
    blake3: str | None,
) -> dict[str, str | None]:
    """Return Civitai's six hash names with values spelled as Civitai shows them."""
    return {
        "SHA256": sha256.upper(),
        "AutoV1": autov1.upper() if size >= CIVITAI_AUTOV1_MIN_SIZE else None,
        "AutoV2": sha256[:10].upper(),
        "AutoV3": autov3[:12].upper() if autov3 else None,
        "CRC32": civitai_crc32(crc32) if crc32 is not None else None,
        "BLAKE3": blake3.upper() if blake3 else None,
    }


# --- host records (registry -> db) ---------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class RemoteFile(Record):
    """A file as a host lists it, with the hashes the host publishes."""

    path: str
    size: int | None
    sha256: str | None  # lower-case hex
    url: str
    hashes: dict[str, str] = field(
        default_factory=dict
    )  # other published hashes, our names
    extra: dict[str, Any] = field(default_factory=dict)  # scan results, file type, ...
    # the host's own date for when this content appeared at this path (HF: the
    # commit that last touched the file; Civitai: the version's publishedAt)
    published_at: datetime | None = None


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class LineageRef(Record):
    """A parent that a host or a file declares, possibly not yet in the index."""

    parent: str  # "hf:org/name", "civitai:4384", or free text such as "SD 1.5"
    relation: (
        str  # finetune | adapter | quantized | merge | copy | conversion | unknown
    )
    source: str  # declared-card | declared-tag | declared-file | declared-description


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Listing(Record):
    """One repository version on one host, with its files and declared lineage."""

    host: str
    host_id: str  # the host's own id: "org/name", "4384", "owner/model"
    name: str
    owner: str | None
    url: str
    revision: str | None  # HF commit sha, Civitai version id, Replicate version id
    updated_at: datetime | None
    status: str = "live"  # live | gated | gone | taken_down | archived | private
    kind: str | None = None  # pipeline tag, Civitai type, ...
    license: str | None = None
    downloads: int | None = None
    likes: int | None = None
    files: tuple[RemoteFile, ...] = ()
    lineage: tuple[LineageRef, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    published_at: datetime | None = None  # the host's creation date of the repo
    downloads_all_time: int | None = None  # HF downloadsAllTime, Civitai downloadCount
