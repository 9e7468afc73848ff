"""``crawl``'s inputs for hosts that list nothing: Ollama names, hashes to ask Civitai.

:func:`host_inputs` turns ``--model``/``--models-from`` and the index (through
``modelscan.db.host_inputs``) into the plain options the host takes (``names``,
``by_hash``/``hashes``); :func:`page_hook` wraps the crawl's progress callback so
that the hashes of every page the crawl commits are remembered as asked. The
registry and the index are imported inside the functions (``modelscan --help``
stays fast).

Example:
    >>> options = host_inputs("ollama", store, names=["gemma:2b"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from modelscan.registry.base import CrawlStats, Host

MAX_NAMES_FILE = 16 * 1024 * 1024  # a --models-from file longer than this is refused


def read_names(models: Sequence[str], models_from: str | None) -> list[str]:
    """The Ollama tags of ``--model`` and ``--models-from``, checked (exit 2 if bad)."""
    from modelscan.registry.ollama import parse_name, parse_names

    names: list[str] = []
    for text in models:
        try:
            names.append(parse_name(text))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--model") from None
    if models_from:
        path = Path(models_from)
        try:
            if path.stat().st_size > MAX_NAMES_FILE:
                raise click.BadParameter(
                    f"{path}: larger than {MAX_NAMES_FILE} bytes",
                    param_hint="--models-from",
                )
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(
                f"{path}: {exc}", param_hint="--models-from"
            ) from None
        try:
            names += parse_names(lines)
        except ValueError as exc:
            raise click.BadParameter(
                f"{path}: {exc}", param_hint="--models-from"
            ) from None
    return names


def host_inputs(
    name: str, store: Any, *, names: Sequence[str], by_hash: bool, full: bool
) -> dict[str, Any]:
    """The options a host needs from the index: Ollama tags, or hashes to ask."""
    from modelscan.db.host_inputs import hashes_to_ask, known_ollama_tags

    if name == "ollama":
        return {"names": sorted({*names, *_valid_tags(known_ollama_tags(store))})}
    if name == "civitai" and by_hash:
        return {"by_hash": True, "hashes": hashes_to_ask(store, name, full=full)}
    return {}


def _valid_tags(found: Sequence[str]) -> list[str]:
    """The index's tags that are registry names (a declared parent may be any text)."""
    from modelscan.registry.ollama import parse_name

    valid = []
    for text in found:
        try:
            valid.append(parse_name(text))
        except ValueError:
            continue
    return valid


def page_hook(
    host: Host, store: Any, progress: Callable[[CrawlStats], None]
) -> Callable[[CrawlStats], None]:
    """``progress``, also saving the hashes of each committed page as asked."""
    from modelscan.db.host_inputs import mark_asked
    from modelscan.registry.civitai_byhash import CivitaiByHashHost
    from modelscan.registry.parsing import utcnow

    if not isinstance(host, CivitaiByHashHost):
        return progress
    done = 0

    def hook(stats: CrawlStats) -> None:
        nonlocal done
        if stats.pages > done:  # pages are counted once committed, in order
            asked = [h for batch in host.batches[done : stats.pages] for h in batch]
            mark_asked(store, host.name, asked, at=utcnow())
            done = stats.pages
        progress(stats)

    return hook
