"""References to repos: the one parser and printer used by the registry and lineage.

A reference names a repo on a host: ``hf:org/name`` (a legacy Hub id may have
no owner: ``hf:gpt2``), ``civitai:4384``, ``replicate:owner/name``; or a host
URL naming one (``https://huggingface.co/org/name/tree/main``,
``https://hf.co/org/name``, ``https://civitai.com/models/4384/dreamshaper``,
``https://replicate.com/owner/name/versions/abc``). Hub URLs of datasets,
spaces, docs or any other site page name no model, and give None.

Pure and light (standard library only), so ``registry/`` and
``modelscan/lineage/`` can both import it.

Example:
    >>> url_ref("https://huggingface.co/gpt2/tree/main"), parse_ref("hf:org/name")
    ('hf:gpt2', ('huggingface', 'org/name'))
    >>> url_ref("https://huggingface.co/datasets/org/name") is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

LOCAL_HOST = "local"  # the user's own files (``fingerprint --save``): no host
# Reference prefix of each host in modelscan.registry.HOSTS (tests check the keys),
# in the order ``crawl --host all`` runs them: Ollama last, as it reads the tags
# the other hosts' cards declared in the same run.
HOST_PREFIXES = {"huggingface": "hf", "civitai": "civitai", "replicate": "replicate",
                 "modelscope": "modelscope", "ollama": "ollama"}  # fmt: skip
PREFIX_HOSTS = {
    **{host: host for host in HOST_PREFIXES},
    **{prefix: host for host, prefix in HOST_PREFIXES.items()},
}
HOST_SITES = {
    "huggingface": "https://huggingface.co",
    "civitai": "https://civitai.com/models",
    "replicate": "https://replicate.com",
    "ollama": "https://ollama.com",
    "modelscope": "https://www.modelscope.cn/models",
}
URL_HOSTS = {
    "huggingface.co": "huggingface",
    "www.huggingface.co": "huggingface",
    "hf.co": "huggingface",
    "civitai.com": "civitai",
    "www.civitai.com": "civitai",
    "replicate.com": "replicate",
    "www.replicate.com": "replicate",
    "ollama.com": "ollama",
    "www.ollama.com": "ollama",
    "modelscope.cn": "modelscope",
    "www.modelscope.cn": "modelscope",
}
CASE_INSENSITIVE_HOSTS = ("huggingface",)  # the Hub resolves repo ids in any case
# First path segments of huggingface.co that are no owner of a model repo.
HF_RESERVED = frozenset(
    {
        "datasets",
        "spaces",
        "docs",
        "blog",
        "papers",
        "settings",
        "join",
        "login",
        "pricing",
        "tasks",
        "learn",
        "organizations",
        "collections",
        "chat",
        "posts",
        "new",
        "enterprise",
        "terms-of-service",
        "privacy",
        "search",
        "notifications",
    }
)
# Pages inside a Hub repo: ``huggingface.co/<id>/<page>/...``.
HF_REPO_PAGES = frozenset(
    {"tree", "blob", "resolve", "raw", "edit", "commit", "commits", "discussions"}
)
REPLICATE_RESERVED = frozenset(
    {"docs", "blog", "pricing", "explore", "collections", "about", "account", "signin"}
)
OLLAMA_RESERVED = frozenset({"search", "blog", "download", "docs", "models", "public",
                             "settings", "signin", "signup", "api"})  # fmt: skip
_TAGGED = re.compile(r"[\w.-]+(:[\w.-]+)?")  # an Ollama name, maybe with its tag
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_SEGMENT = re.compile(r"[\w.-]+")
_URL = re.compile(r"https?://[^\s<>()\[\]{}|\"'`]+")
_URL_TAIL = ".,;:!?*"  # punctuation and Markdown emphasis closing a link in prose


def ref_for(host: str, host_id: str) -> str:
    """Return the canonical reference text of a repo (``hf:org/name``)."""
    return f"{HOST_PREFIXES.get(host, host)}:{host_id}"


def parse_ref(ref: str) -> tuple[str, str] | None:
    """Return (host, host_id) named by a reference like "hf:org/name", else None."""
    prefix, sep, rest = ref.partition(":")
    host = PREFIX_HOSTS.get(prefix.strip().lower())
    if not sep or host is None or not rest.strip() or rest.startswith("//"):
        return None
    return host, rest.strip()


def _hf_repo(path: list[str]) -> str | None:
    """The repo id a Hub URL path names: ``org/name`` or a legacy ``gpt2``."""
    if path[:2] == ["api", "models"]:
        path = path[2:]
    elif path[:1] == ["models"]:
        path = path[1:]
    if not path or path[0].lower() in HF_RESERVED or path[0] == "api":
        return None
    # A legacy id without owner (huggingface.co/gpt2/tree/main) is one segment.
    legacy = len(path) == 1 or path[1] in HF_REPO_PAGES
    found = path[:1] if legacy else path[:2]
    if not all(_SEGMENT.fullmatch(p) for p in found):
        return None
    return "/".join(found)


def _civitai_model(path: list[str]) -> str | None:
    if len(path) >= 2 and path[0] == "models" and path[1].isdigit():
        return path[1]
    return None


def _replicate_model(path: list[str]) -> str | None:
    if len(path) < 2 or path[0].lower() in REPLICATE_RESERVED:
        return None
    return "/".join(path[:2]) if all(_SEGMENT.fullmatch(p) for p in path[:2]) else None


def _ollama_model(path: list[str]) -> str | None:
    """``ollama.com/library/gemma:2b`` -> ``library/gemma:2b`` (``/NS/NAME`` alike)."""
    if len(path) != 2 or path[0] in OLLAMA_RESERVED:
        return None
    return "/".join(path) if all(_TAGGED.fullmatch(p) for p in path) else None


def _modelscope_model(path: list[str]) -> str | None:
    """``modelscope.cn/models/OWNER/NAME[/...]`` -> ``OWNER/NAME``."""
    if len(path) >= 3 and path[0] == "models":
        found = path[1:3]
        return "/".join(found) if all(_SEGMENT.fullmatch(p) for p in found) else None
    return None


def url_repo(text: str) -> tuple[str, str] | None:
    """Return (host, host_id) of the model repo a host URL names, else None."""
    parts = urlsplit(text.strip())
    host = (
        URL_HOSTS.get(parts.netloc.lower())
        if parts.scheme in ("http", "https")
        else None
    )
    path = [p for p in parts.path.split("/") if p]
    if host is None or not path:
        return None
    found = {
        "huggingface": _hf_repo,
        "civitai": _civitai_model,
        "replicate": _replicate_model,
        "ollama": _ollama_model,
        "modelscope": _modelscope_model,
    }[host](path)
    return (host, found) if found else None


def url_ref(text: str) -> str | None:
    """Turn a host URL naming a model repo into a reference (``hf:org/name``)."""
    found = url_repo(text)
    return ref_for(*found) if found else None


def parse_any_ref(ref: str) -> tuple[str, str] | None:
    """Return the (host, host_id) a reference or a host URL names, else None."""
    text = ref.strip()
    return url_repo(text) if "://" in text else parse_ref(text)


def hf_ref(value: str) -> str:
    """Name a parent a Hub card or file declares: a reference when it is one.

    A repo id becomes ``hf:<id>``, a host URL its reference; anything else (a
    local path, free text) is kept as given.

    >>> hf_ref("mistralai/Mistral-7B-v0.1"), hf_ref("/home/me/llama")
    ('hf:mistralai/Mistral-7B-v0.1', '/home/me/llama')
    """
    value = value.strip()
    if "://" in value:
        return url_ref(value) or value
    return f"hf:{value}" if _REPO_ID.fullmatch(value) else value


def find_links(text: str, *, hosts: Collection[str] | None = None) -> list[str]:
    """Model repos a text links to, as references, in order of first mention.

    Args:
        text: prose, Markdown or HTML.
        hosts: only links to these hosts (names of ``HOST_PREFIXES``); all if None.

    >>> find_links("weights: https://huggingface.co/TheBloke/Llama-2-7b-Chat-GPTQ.")
    ['hf:TheBloke/Llama-2-7b-Chat-GPTQ']
    >>> find_links("https://replicate.com/a/b", hosts=("huggingface", "civitai"))
    []
    """
    found: dict[str, None] = {}
    for url in _URL.findall(text):
        repo = url_repo(url.rstrip(_URL_TAIL))
        if repo is not None and (hosts is None or repo[0] in hosts):
            found[ref_for(*repo)] = None
    return list(found)


def repo_ref_forms(host: str, host_id: str, url: str | None) -> list[str]:
    """Every spelling of a reference to a repo that a host or a file may use."""
    forms = [ref_for(host, host_id), f"{host}:{host_id}"]
    site = HOST_SITES.get(host)
    if site:
        forms.append(f"{site}/{host_id}")
    if url:
        forms.append(url)
    return list(dict.fromkeys(forms))
