"""What ``lineage`` and ``spread`` are about: a repo, a hash, a reference or a file.

A subject is a repo (``hf:org/name``, ``civitai:4384``, ``replicate:owner/name``
or a host URL), a hash in any spelling ``modelscan where`` accepts, or a local
file (fingerprinted first). It is resolved against the index to the repos that
hold it and the model files that are its own.

Example:
    >>> subject = resolve_subject(store, "hf:org/name")  # doctest: +SKIP
    >>> subject.kind, subject.label  # doctest: +SKIP
    ('repo', 'hf:org/name')
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from modelscan.errors import StoreError
from modelscan.lineage.rows import LineageIndex
from modelscan.records import Fingerprint
from modelscan.refs import parse_any_ref, repo_ref_forms

MODEL_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".ggml",
    ".onnx",
    ".h5",
    ".msgpack",
    ".pkl",
    ".nemo",
    ".tflite",
    ".mlmodel",
)


@dataclass(frozen=True, slots=True)
class Subject:
    """What a command is about, resolved against the index."""

    text: str  # as the user gave it
    kind: str  # repo | hash | file | ref
    label: str  # how it is shown
    repo_ids: tuple[int, ...] = ()  # repos that are the subject or hold its bytes
    sha256s: tuple[str, ...] = ()  # the subject's own files
    refs: tuple[str, ...] = ()  # reference spellings declared children may use
    fingerprint: Fingerprint | None = None  # a local file's, not in the index


def model_blobs(index: LineageIndex, repo_id: int) -> tuple[str, ...]:
    """Return the model files (by sha256) a repo has ever held.

    A file counts when its blob was fingerprinted with tensors or its path has a
    model file suffix; READMEs, configs and tokenizers do not.
    """
    return index.repo_model_blobs(repo_id, MODEL_SUFFIXES)


def resolve_subject(
    index: LineageIndex, text: str, *, fp: Fingerprint | None = None
) -> Subject:
    """Resolve a repo reference, a hash or a fingerprinted local file.

    Raises:
        StoreError: the text is neither a reference nor a hash in a known spelling,
            or the hash matches nothing in the index.
    """
    if fp is not None:
        return _file_subject(index, text, fp)
    parsed = parse_any_ref(text)
    if parsed is not None:
        return _repo_subject(index, text, *parsed)
    shas = index.match_hash(text)
    if not shas:
        raise StoreError(
            f"{text}: no file with this hash in the index; crawl or "
            "`modelscan fingerprint --save` it first"
        )
    more = f" (+{len(shas) - 1} more)" if len(shas) > 1 else ""
    holders = index.holdings(shas).holders()
    return Subject(text, "hash", f"sha256:{shas[0][:12]}{more}", holders, shas)


def _repo_subject(index: LineageIndex, text: str, host: str, host_id: str) -> Subject:
    rid = index.find_repo(host, host_id)
    if rid is None:
        forms = tuple(repo_ref_forms(host, host_id, None))
        return Subject(text, "ref", forms[0], (), (), forms)
    row = index.repos([rid])[rid]
    forms = tuple(repo_ref_forms(row.host, row.host_id, row.url))
    return Subject(text, "repo", forms[0], (rid,), model_blobs(index, rid), forms)


def _file_subject(index: LineageIndex, text: str, fp: Fingerprint) -> Subject:
    sha = fp.sha256.lower()
    holders = index.holdings([sha]).holders() if index.known_blob(sha) else ()
    label = os.path.basename(text) or text
    return Subject(text, "file", label, holders, (sha,), fingerprint=fp)
