"""Model hosts: one module per host, pure ``parse_*`` functions and a small class.

``HOSTS`` maps each host's name to its class; :func:`make_host` builds one from
the environment (base URL and token variables) and the crawl options.

Example:
    >>> from modelscan.registry import make_host
    >>> from modelscan.registry.base import crawl
    >>> crawl(make_host("civitai", rate=2), store)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

from modelscan.registry.base import Host
from modelscan.registry.civitai import CivitaiHost
from modelscan.registry.http import Budget
from modelscan.registry.huggingface import HuggingFaceHost
from modelscan.registry.replicate import ReplicateHost

HOSTS: dict[str, type[HuggingFaceHost] | type[CivitaiHost] | type[ReplicateHost]] = {
    "huggingface": HuggingFaceHost,
    "civitai": CivitaiHost,
    "replicate": ReplicateHost,
}


def make_host(
    name: str,
    *,
    endpoint: str | None = None,
    rate: float | None = None,
    author: str | None = None,
    search: str | None = None,
    tag: str | None = None,
    sleep: Callable[[float], None] | None = None,
    token: str | None = None,
    budget: Budget | None = None,
) -> Host:
    """Build the named host from the environment and the crawl options.

    Args:
        name: a key of :data:`HOSTS`.
        endpoint: base URL overriding the host's env var and default.
        rate: at most this many requests per second.
        author: only this owner's listings (not for Replicate).
        search: only listings matching this text (not for Replicate).
        tag: only listings with this tag (not for Replicate).
        sleep: the waiting function (tests pass a fake).
        token: the token to use instead of the host's variable (one of HF_TOKENS).
        budget: a request budget shared with other workers.

    Raises:
        KeyError: unknown host name.
        ValueError: a filter the host does not support.
        AuthRequired: the host needs a token that is not set (Replicate).
    """
    try:
        host_class = HOSTS[name]
    except KeyError:
        raise KeyError(
            f"unknown host {name!r}; choose from {', '.join(HOSTS)}"
        ) from None
    return host_class.from_env(
        endpoint=endpoint,
        rate=rate,
        author=author,
        search=search,
        tag=tag,
        sleep=sleep,
        token=token,
        budget=budget,
    )


__all__ = ["HOSTS", "make_host"]
