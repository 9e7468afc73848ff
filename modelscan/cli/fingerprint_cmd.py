"""``modelscan fingerprint``: hash and fingerprint model files, never running them."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from modelscan.cli.options import db_option, json_flag, open_index
from modelscan.errors import ModelscanError, UnknownFormat

if TYPE_CHECKING:
    from modelscan.records import Fingerprint


def _expand(paths: tuple[str, ...]) -> Iterator[tuple[str, bool]]:
    """Yield (path, named_explicitly); directories are walked for model files."""
    from modelscan.scanner.fingerprint import iter_model_files

    for p in paths:
        if _is_remote(p):
            yield p, True
        elif os.path.isdir(p):
            for found in iter_model_files(p):
                yield str(found), False
        else:
            yield p, True


REMOTE_SCHEMES = ("hf://", "civitai://", "http://", "https://")


def _is_remote(path: str) -> bool:
    """A hosted file to read through HTTP Range requests, not a local path."""
    return path.startswith(REMOTE_SCHEMES)


def _compute(
    path: str, *, all_hashes: bool, any_file: bool, progress: Any
) -> Fingerprint:
    """Fingerprint a local path, or a hosted file through Range requests."""
    if _is_remote(path):
        from modelscan.registry.remote import fetch_remote_fingerprint

        return fetch_remote_fingerprint(path, all_hashes=all_hashes)
    from modelscan.scanner.fingerprint import fingerprint as compute

    return compute(path, all_hashes=all_hashes, any_file=any_file, progress=progress)


def _save(store: Any, fp: Fingerprint, path: str) -> None:
    """Store a fingerprint: a remote one as an occurrence at its URL."""
    if fp.remote is None:
        from pathlib import Path

        store.save_fingerprint(fp, location=str(Path(path).resolve()))
        return
    if not fp.sha256:
        raise click.UsageError(
            f"{path}: the host states no sha256, which --save needs as the key; "
            "fingerprint the downloaded file instead"
        )
    store.save_fingerprint(fp, location=path, host="remote", repo=_remote_repo(path))


def _remote_repo(ref: str) -> str:
    """The repo an occurrence at ``ref`` belongs to: hf://OWNER/NAME, civitai://ID.

    >>> _remote_repo("hf://o/n/sub/m.gguf@v1"), _remote_repo("civitai://7/9")
    ('hf://o/n', 'civitai://7')
    """
    scheme, _, body = ref.partition("://")
    keep = {"hf": 2, "civitai": 1}.get(scheme)
    if keep is not None:
        return f"{scheme}://" + "/".join(body.split("@")[0].split("/")[:keep])
    return ref.rsplit("/", 1)[0] if "/" in body else ref


def _total_bytes(paths: list[str]) -> int:
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):
            total += os.stat(p).st_size
    return total


def _summary(fp: Fingerprint) -> str:
    dtypes = Counter(t.dtype for t in fp.tensors)
    dtype_text = ", ".join(f"{d} x{n}" for d, n in sorted(dtypes.items()))
    lines = [fp.path]
    what = fp.format
    if fp.tensors:
        what += (
            f" ({len(fp.tensors)} tensors, {fp.parameter_count:,} params: {dtype_text})"
        )
    rows: list[tuple[str, str]] = [
        ("format", what),
        ("size", f"{fp.size:,} bytes"),
        ("sha256", fp.sha256 or "(not stated by the host)"),
        ("autov1", fp.autov1 + ("" if fp.size >= 1 << 20 else " (file under 1 MiB)")),
        ("autov2", fp.autov2 or "(needs the sha256)"),
    ]
    if fp.autov3:
        rows.append(("autov3", fp.autov3))
    if fp.blake3:
        rows.append(("blake3", fp.blake3))
    if fp.crc32 is not None:
        rows.append(("crc32", f"{fp.crc32:08x}"))
    civ = "  ".join(f"{k} {v}" for k, v in fp.civitai_hashes().items() if v)
    rows.append(("civitai", civ))
    for key in ("content_id", "weights_id", "structure_id"):
        value = getattr(fp, key)
        if value:
            rows.append((key, value))
    rows.extend(_metadata_rows(fp.metadata))
    for c in fp.claims:
        state = {True: "verified", False: "DOES NOT MATCH", None: "unverified"}[
            c.verified
        ]
        rows.append(("claim", f"{c.key} = {c.value} ({c.meaning}, {state})"))
    if fp.pickle_safety:
        ps = fp.pickle_safety
        text = f"{ps.verdict}: {len(ps.globals)} globals"
        if ps.dangerous:
            text += f"; DANGEROUS: {', '.join(ps.dangerous)}"
        elif ps.verdict == "unsafe":
            allowed = _not_allowed(ps.globals)
            if allowed:
                text += f"; not on the allowlist: {', '.join(allowed[:6])}"
                text += " ..." if len(allowed) > 6 else ""
            else:  # a broken stream, or a TorchScript archive's code
                text += "; see the pickle error and notes"
        rows.append(("pickle", text))
        if ps.error:
            rows.append(
                ("pickle error", f"{ps.error} (verdict covers what came before)")
            )
        rows.extend(("note", n) for n in ps.notes)
    if fp.remote is not None:
        r = fp.remote
        how = "read whole" if r.whole else f"{_sketched(fp)} sketches"
        cost = f"{r.requests} requests, {r.bytes:,} bytes ({how})"
        rows.append(("remote", cost))
    lines.extend(f"  {k:<13}{v}" for k, v in rows)
    return "\n".join(lines)


def _sketched(fp: Fingerprint) -> int:
    return sum(1 for t in fp.tensors if t.sketch is not None)


def _not_allowed(names: tuple[str, ...]) -> list[str]:
    from modelscan.scanner.formats.pickle_safe import SAFE_GLOBALS

    return [n for n in names if n not in SAFE_GLOBALS]


def _metadata_rows(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in list(metadata.items())[:12]:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > 100:
            text = text[:97] + "..."
        rows.append(("metadata", f"{key} = {text}"))
    if len(metadata) > 12:
        rows.append(("metadata", f"... {len(metadata) - 12} more keys (see --json)"))
    return rows


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@json_flag("One JSON object per file (JSON Lines).")
@click.option("--all-hashes", is_flag=True, help="Also whole-file BLAKE3 and CRC-32.")
@click.option("--any-file", is_flag=True, help="Hash unknown formats at file level.")
@click.option(
    "--no-tensors", is_flag=True, help="Leave the per-tensor list out of --json."
)
@click.option("--save", is_flag=True, help="Store the results in the index.")
@db_option
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: on a terminal).",
)
def fingerprint(
    paths: tuple[str, ...],
    as_json: bool,
    all_hashes: bool,
    any_file: bool,
    no_tensors: bool,
    save: bool,
    db: str | None,
    progress: bool | None,
) -> None:
    r"""Fingerprint model files: file hashes, tensor digests, ids, safety.

    Directories are walked for model files (recognised by magic bytes). Pickles
    are read without being executed, also inside npy/npz, zip, tar, 7z,
    compressed and joblib files: "safe", "unsafe" (review the globals listed) or
    "unsafe" with each dangerous call named. A broken stream is judged up to the
    fault and counts as failed. Exit status is 1 when any file failed.

    A hosted file is read through HTTP Range requests without downloading it:
    hf://OWNER/NAME/PATH[@REVISION] (HF_ENDPOINT, HF_TOKEN), civitai://VERSION_ID
    or civitai://VERSION_ID/FILE_ID (MODELSCAN_CIVITAI_URL, CIVITAI_API_TOKEN),
    or the http(s):// URL of a server that supports Range. At most 40 requests
    and the file's metadata plus 1 MiB are read; tensor digests, content_id and
    weights_id need every byte and stay empty unless the file is small.

    \b
    Example:
        modelscan fingerprint model.safetensors
        modelscan fingerprint --json --all-hashes ./checkpoints/ > prints.jsonl
        modelscan fingerprint --save pytorch_model.bin
        modelscan fingerprint hf://sentence-transformers/all-MiniLM-L6-v2/model.safetensors
    """
    from modelscan.cli import configure_logging, progress_bar, verbosity

    targets = list(_expand(paths))
    if save or verbosity() or any(_is_remote(p) for p, _ in targets):
        configure_logging()  # the index and the hosts' clients log; the scanner never
    show_bar = (
        progress if progress is not None else (sys.stderr.isatty() and not as_json)
    )
    total = _total_bytes([p for p, _ in targets])
    bar = progress_bar(
        total=total, unit="B", unit_scale=True, disable=not show_bar, file=sys.stderr
    )
    failed = 0
    with bar, _index(db, save=save) as store:
        for path, explicit in targets:
            try:
                fp = _compute(
                    path,
                    all_hashes=all_hashes,
                    any_file=any_file and explicit,
                    progress=bar.update,
                )
                if store is not None:
                    _save(store, fp, path)
            except ModelscanError as exc:
                if isinstance(exc, UnknownFormat) and not explicit:
                    continue  # a directory walk's look-alike (a gzip of text): skip
                failed += 1
                bar.clear()
                click.echo(f"modelscan: error: {exc}", err=True)
                continue
            bar.clear()
            if as_json:
                click.echo(
                    json.dumps(fp.to_json(with_tensors=not no_tensors), default=str)
                )
            else:
                click.echo(_summary(fp))
            if fp.pickle_safety is not None and fp.pickle_safety.error:
                failed += 1  # the verdict is printed, and the stream was broken
                error = fp.pickle_safety.error
                click.echo(
                    f"modelscan: error: {path}: broken pickle: {error}", err=True
                )
    if not targets:
        click.echo("modelscan: error: no model files found", err=True)
        sys.exit(1)
    if failed:
        sys.exit(1)


def _index(db: str | None, *, save: bool) -> contextlib.AbstractContextManager[Any]:
    """The index (closed afterwards) when saving, else None."""
    return open_index(db) if save else contextlib.nullcontext()


COMMANDS: list[click.Command] = [fingerprint]
