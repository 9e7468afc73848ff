"""Who runs each host, under which country's law, and what its downloads count.

The argument the index tests is that weights held by hosts in several
jurisdictions cannot be recalled by any one government; ``spread`` reports the
jurisdictions and operators holding a live copy beside the takedown cost. The
built-in table below is overridable, host by host, in a TOML file
(``MODELSCAN_HOSTS_FILE``, else ``hosts.toml`` in the user config directory)::

    [huggingface]
    operator = "Hugging Face, Inc."
    country = "US"

    [my-mirror]
    operator = "Example University"
    country = "DE"
    downloads = "all-time"

``country`` is an ISO 3166-1 alpha-2 code; ``downloads`` says what the host's
``downloads`` figure counts (``last-30-days``, ``all-time``, ``runs``).

Example:
    >>> host_info("civitai").country
    'US'
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from modelscan.errors import ConfigError

HOSTS_FILE_ENV = "MODELSCAN_HOSTS_FILE"
DOWNLOAD_KINDS = ("last-30-days", "all-time", "runs")


@dataclass(frozen=True, slots=True)
class HostInfo:
    """The operator and jurisdiction of one host, and what its downloads count."""

    operator: str | None
    country: str | None  # ISO 3166-1 alpha-2
    downloads: str | None = None  # one of DOWNLOAD_KINDS


# Sources: each operator's terms of service name the company and its seat
# (Hugging Face, Inc., New York; Civitai, Inc., Idaho; Replicate, Inc.,
# San Francisco; Ollama, Inc., Palo Alto; ModelScope is run by Alibaba Cloud,
# Hangzhou). HF counts downloads over the last 30 days (its API docs), Civitai's
# stats.downloadCount is all-time, Replicate counts runs.
BUILT_IN: dict[str, HostInfo] = {
    "huggingface": HostInfo("Hugging Face, Inc.", "US", "last-30-days"),
    "civitai": HostInfo("Civitai, Inc.", "US", "all-time"),
    "replicate": HostInfo("Replicate, Inc.", "US", "runs"),
    "ollama": HostInfo("Ollama, Inc.", "US", None),
    "modelscope": HostInfo("Alibaba Cloud (ModelScope)", "CN", "all-time"),
}
COUNTRY_NAMES = {"US": "United States", "CN": "China"}
UNKNOWN = HostInfo(None, None, None)


def hosts_file() -> Path:
    """Where the override file is looked for."""
    named = os.environ.get(HOSTS_FILE_ENV)
    if named:
        return Path(named)
    from platformdirs import user_config_dir

    return Path(user_config_dir("modelscan")) / "hosts.toml"


def parse_hosts(
    data: Mapping[str, Any], *, source: str = "hosts file"
) -> dict[str, HostInfo]:
    """Merge an override table (parsed TOML) over the built-in one.

    Raises:
        ConfigError: an entry is not a table or has a bad value.
    """
    out = dict(BUILT_IN)
    for host, entry in data.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: [{host}] is not a table")
        unknown = set(entry) - {"operator", "country", "downloads"}
        if unknown:
            raise ConfigError(f"{source}: [{host}] has unknown keys {sorted(unknown)}")
        for key in ("operator", "country", "downloads"):
            value = entry.get(key)
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise ConfigError(f"{source}: [{host}] {key} must be a string")
        downloads = entry.get("downloads")
        if downloads is not None and downloads not in DOWNLOAD_KINDS:
            kinds = ", ".join(DOWNLOAD_KINDS)
            raise ConfigError(f"{source}: [{host}] downloads must be one of {kinds}")
        country = entry.get("country")
        base = out.get(host, UNKNOWN)
        out[host] = replace(
            base,
            **{k: v for k, v in entry.items() if k != "country"},
            country=country.upper() if isinstance(country, str) else base.country,
        )
    return out


@cache
def _table(path: str, stamp: tuple[int, int] | None) -> dict[str, HostInfo]:
    """The table from the file at ``path`` as it was at ``stamp`` (mtime, size)."""
    file = Path(path)
    if stamp is None:
        if os.environ.get(HOSTS_FILE_ENV):
            raise ConfigError(f"{file}: no such hosts file ({HOSTS_FILE_ENV})")
        return dict(BUILT_IN)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    return parse_hosts(data, source=str(file))


def _stamp(file: Path) -> tuple[int, int] | None:
    try:
        st = file.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def host_table() -> dict[str, HostInfo]:
    """The built-in table with the user's overrides applied."""
    file = hosts_file()
    return dict(_table(str(file), _stamp(file)))


def host_info(host: str) -> HostInfo:
    """The operator and country of ``host`` (None for a host nobody described)."""
    return host_table().get(host, UNKNOWN)
