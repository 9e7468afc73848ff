"""Hash and lineage claims that a file makes in its own metadata.

A claim about the file itself (kohya's ``sshs_model_hash``, the model spec's
``modelspec.hash_sha256``, ``sshs_legacy_hash``) is checked against what was
computed; a claim about another file (the base model's hash or name, a GGUF
source repository) cannot be checked from this file alone and is reported with
``verified=None`` for the index to resolve later.

Example:
    >>> [c.meaning for c in claims_from_metadata({"ss_sd_model_hash": "925997e9"},
    ...     autov1="00000000", autov3=None)]
    ['autov1-of-base']
"""

from __future__ import annotations

from typing import Any

from modelscan.records import Claim

# Keys whose value identifies another file (kohya training metadata, model spec).
_BASE_KEYS = {
    "ss_sd_model_hash": "autov1-of-base",
    "ss_new_sd_model_hash": "sha256-of-base",
    "ss_sd_model_name": "name-of-base",
    "ss_vae_hash": "autov1-of-vae",
    "ss_new_vae_hash": "sha256-of-vae",
}
_GGUF_PREFIXES = ("general.base_model.", "general.source.")


def _strip_hex(value: str) -> str:
    text = value.strip().lower()
    return text[2:] if text.startswith("0x") else text


def _matches(claimed: str, computed: str | None) -> bool | None:
    if computed is None:
        return None
    text = _strip_hex(claimed)
    return bool(text) and computed.startswith(text)


def claims_from_metadata(
    metadata: dict[str, Any], *, autov1: str, autov3: str | None
) -> tuple[Claim, ...]:
    """Extract every embedded claim from a file's metadata.

    Args:
        metadata: safetensors ``__metadata__`` or GGUF key-values.
        autov1: the file's computed AutoV1 (8 hex).
        autov3: the computed SHA-256 of the safetensors body, or None.

    Returns:
        Claims sorted by key.
    """
    out: list[Claim] = []
    for key in sorted(metadata):
        value = metadata[key]
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            continue
        text = str(value)
        if key in ("sshs_model_hash", "modelspec.hash_sha256"):
            out.append(Claim(key, text, "autov3-of-this-file", _matches(text, autov3)))
        elif key == "sshs_legacy_hash":
            out.append(Claim(key, text, "autov1-of-this-file", _matches(text, autov1)))
        elif key in _BASE_KEYS:
            out.append(Claim(key, text, _BASE_KEYS[key], None))
        elif key.startswith(_GGUF_PREFIXES) and not key.endswith(".count"):
            meaning = (
                "base-model" if key.startswith("general.base_model.") else "source"
            )
            out.append(Claim(key, text, meaning, None))
    return tuple(out)
