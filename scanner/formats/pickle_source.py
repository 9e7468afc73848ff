"""Sequential, bounded reads over one pickle, for the stack machine in pickle_vm.

Bytes already in memory are used in place; a file is read lazily through a
reader in windows that grow x4 per refill (64 KiB to 16 MiB), so a tiny pickle
costs one read and a huge one few. A length beyond the data is refused before
anything is read, as a truncation, or as the byte cap when that comes first.

Example:
    >>> src = Source(lambda off, n: b"N."[off:off + n], start=0, end=2, path="x")
    >>> src.byte(), src.byte()
    (78, 46)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from modelscan.errors import FormatError, HeaderTooLarge, TruncatedFile

if TYPE_CHECKING:
    from modelscan.scanner.layout import RangeReader

MAX_PICKLE_BYTES = 256 * 1024 * 1024  # state-dict pickles are KBs: tensors live outside
_FIRST_FETCH = 64 * 1024  # grows x4 per refill: few reads for tiny and huge pickles
_MAX_FETCH = 16 * 1024 * 1024


class Source:
    """Sequential, bounded reads over one pickle; bytes are fetched lazily."""

    def __init__(
        self,
        fetch: Callable[[int, int], bytes],
        *,
        start: int,
        end: int,
        path: str,
        cap: int = MAX_PICKLE_BYTES,
        preloaded: bytes | None = None,
        fetch_some: Callable[[int, int, int], bytes] | None = None,
    ) -> None:
        self._fetch = fetch
        self._fetch_some = fetch_some
        self._data_end = end
        self._end = min(end, start + cap)
        self._cap = cap
        # Bytes already in memory are used in place and never fetched again.
        self._buf = b"" if preloaded is None else preloaded
        self._base = start if preloaded is None else 0
        self._window = _FIRST_FETCH
        self.pos = start
        self.path = path

    @classmethod
    def from_reader(
        cls, reader: RangeReader, offset: int, *, cap: int = MAX_PICKLE_BYTES
    ) -> Source:
        """Read ``reader`` lazily from ``offset``.

        A reader with a ``read_ahead`` method (a remote one) decides how far
        past the bytes needed each read goes.
        """
        return cls(
            reader.read_at,
            start=offset,
            end=reader.size,
            path=reader.name,
            cap=cap,
            fetch_some=getattr(reader, "read_ahead", None),
        )

    def remaining(self) -> int:
        """Bytes left before the data ends or the cap is reached."""
        return self._end - self.pos

    def short(self, n: int, what: str) -> FormatError:
        """The error for ``n`` bytes wanted where fewer remain: truncation or cap."""
        if self.pos + n > self._data_end:
            have = self._data_end - self.pos
            return TruncatedFile(
                self.path, f"{what} at offset {self.pos} needs {n} bytes, {have} remain"
            )
        return HeaderTooLarge(self.path, f"pickle longer than the {self._cap}-byte cap")

    def _fill(self, n: int, what: str) -> None:
        if n > self.remaining():
            raise self.short(n, what)
        if self.pos + n > self._base + len(self._buf):
            want = min(max(n, self._window), self.remaining())
            if self._fetch_some is not None:  # the reader picks, between n and want
                self._buf = self._fetch_some(self.pos, n, want)
            else:
                self._buf = self._fetch(self.pos, want)
            self._base = self.pos
            self._window = min(self._window * 4, _MAX_FETCH)

    def read(self, n: int, what: str = "pickle opcode") -> bytes:
        """Return the next ``n`` bytes; a length beyond the data is refused first."""
        self._fill(n, what)
        i = self.pos - self._base
        self.pos += n
        return self._buf[i : i + n]

    def skip(self, n: int, what: str) -> None:
        """Pass over ``n`` bytes that are not pickle (they do not count to the cap)."""
        if self.pos + n > self._data_end:
            raise self.short(n, what)
        self.pos += n
        self._end = min(self._data_end, self._end + n)

    def byte(self) -> int:
        """Return the next byte."""
        self._fill(1, "next opcode (no STOP yet)")
        b = self._buf[self.pos - self._base]
        self.pos += 1
        return b

    def line(self) -> bytes:
        """Return bytes up to the next newline (excluded), growing the window."""
        while True:
            i = self.pos - self._base
            stop = min(len(self._buf), self._end - self._base)
            j = self._buf.find(b"\n", i, stop)
            if j >= 0:
                self.pos = self._base + j + 1
                return self._buf[i:j]
            self._fill(2 * (stop - i) + 64, "text line without newline")
