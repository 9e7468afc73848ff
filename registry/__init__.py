"""Model hosts: one module per host, pure ``parse_*`` functions and a small class.

``HOSTS`` maps each host's name to its class; :func:`make_host` builds one from
the environment (base URL and token variables) and the crawl options.

Example:
    >>> from modelscan.registry import make_host
    >>> from modelscan.registry.base import crawl
    >>> crawl(make_host("civitai", rate=2), store)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Unpack

from modelscan.registry.base import Host, HostOptions
from modelscan.registry.civitai import CivitaiHost
from modelscan.registry.civitai_byhash import CivitaiByHashHost
from modelscan.registry.huggingface import HuggingFaceHost
from modelscan.registry.modelscope import ModelScopeHost
from modelscan.registry.ollama import OllamaHost
from modelscan.registry.replicate import ReplicateHost

HostClass = (
    type[HuggingFaceHost]
    | type[CivitaiHost]
    | type[ReplicateHost]
    | type[OllamaHost]
    | type[ModelScopeHost]
)
HOSTS: dict[str, HostClass] = {
    "huggingface": HuggingFaceHost,
    "civitai": CivitaiHost,
    "replicate": ReplicateHost,
    "ollama": OllamaHost,
    "modelscope": ModelScopeHost,
}


def make_host(name: str, **options: Unpack[HostOptions]) -> Host:
    """Build the named host from the environment and the crawl options.

    Args:
        name: a key of :data:`HOSTS`.
        **options: endpoint, rate, author, search, tag, sleep, token, budget,
            names (Ollama), by_hash and hashes (Civitai)
            (:class:`~modelscan.registry.base.HostOptions` says what each is).

    Raises:
        KeyError: unknown host name.
        TypeError: an option no host takes.
        ValueError: a filter the host does not support, ``names`` for another
            host than Ollama, ``by_hash`` for another than Civitai.
        AuthRequired: the host needs a token that is not set (Replicate).
    """
    try:
        host_class = HOSTS[name]
    except KeyError:
        raise KeyError(
            f"unknown host {name!r}; choose from {', '.join(HOSTS)}"
        ) from None
    unknown = sorted(set(options) - HostOptions.__optional_keys__)
    if unknown:
        raise TypeError(f"make_host() got unknown options: {', '.join(unknown)}")
    if options.get("names") and name != "ollama":
        raise ValueError("--model and --models-from name Ollama tags: --host ollama")
    if options.get("by_hash"):
        if name != "civitai":
            raise ValueError("--by-hash asks Civitai: use it with --host civitai")
        return CivitaiByHashHost.from_env(**options)
    return host_class.from_env(**options)


__all__ = ["HOSTS", "make_host"]
