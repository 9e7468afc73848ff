"""Torch checkpoints that cannot be read as checkpoints still get a pickle verdict.

``torch.load`` runs a checkpoint's pickle before it needs any storage, so a
file whose tensors cannot be located (a cut download, a missing or short
storage, a broken ``data.pkl``) still runs whatever its pickles call. The
checkpoint parsers (:mod:`.torch_zip`, :mod:`.torch_legacy`) refuse such files;
this module reads them again leniently and returns a layout with no tensors,
the verdict of every pickle read up to the fault, and the parser's reason as
the verdict's ``error``. A file that cannot be read even so (a zip without its
central directory) is refused with the parser's error.

Example:
    >>> layout = read_layout(reader)  # doctest: +SKIP
    >>> layout.tensors, layout.pickle_safety.error
    ((), 'not readable as a checkpoint: ... storage small/data/0 is missing')
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modelscan.errors import FormatError, UnknownFormat
from modelscan.scanner.formats import pickle_safe
from modelscan.scanner.layout import Layout, RangeReader
from modelscan.scanner.sniff import HEAD_BYTES, Format, detect_format


def _lenient(reader: RangeReader, fmt: Format) -> Layout:
    if fmt is Format.ZIP:
        # Only here (a broken checkpoint): archives imports tarfile, lzma, bz2, npy.
        from modelscan.scanner.formats import archives

        return archives.zip_layout(reader)
    return pickle_safe.read_layout(reader)


def _strict(reader: RangeReader, fmt: Format, options: dict[str, Any]) -> Layout:
    """The checkpoint parser of ``fmt``, imported alone (each costs start-up)."""
    if fmt is Format.ZIP:
        from modelscan.scanner.formats import torch_zip

        return torch_zip.read_layout(reader, **options)
    from modelscan.scanner.formats import torch_legacy

    return torch_legacy.read_layout(reader, **options)


def read_layout(reader: RangeReader, **options: Any) -> Layout:
    """Read a torch zip or legacy checkpoint; a broken one gets its verdict anyway.

    Args:
        reader: the file.
        options: passed to the checkpoint parser (remote reads).

    Returns:
        The checkpoint's layout, or (when it cannot be read as a checkpoint)
        a layout of the same format with no tensors and the lenient verdict.

    Raises:
        UnknownFormat: a zip holding no checkpoint, pickle or array.
        FormatError: not even the lenient read could get a verdict.
    """
    fmt = detect_format(reader.read_at(0, min(reader.size, HEAD_BYTES)), reader.size)
    try:
        layout = _strict(reader, fmt, options)
    except UnknownFormat:
        raise
    except FormatError as exc:
        try:
            lenient = _lenient(reader, fmt)
        except FormatError:
            raise exc from None
        if fmt is Format.ZIP and not lenient.metadata.get("archive.pickles"):
            raise exc  # no member could be read: nothing to judge
        reason = f"not readable as a checkpoint: {exc.reason}"
        safety = lenient.pickle_safety or pickle_safe.safety([], error=reason)
        error = "; ".join(e for e in (reason, safety.error) if e)
        safety = replace(safety, verdict="unsafe", error=error)
        return Layout(
            format="torch-zip" if fmt is Format.ZIP else "torch-legacy",
            metadata=lenient.metadata,
            pickle_safety=safety,
        )
    return layout
