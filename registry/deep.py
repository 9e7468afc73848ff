"""``crawl --deep``: remote fingerprints of the model files a crawl lists.

After each page is saved, the files of that page's repos whose sha256 has no
fingerprint yet are read through HTTP Range (:mod:`modelscan.registry.remote`),
one read per blob however many repos hold it, and their fingerprints (format,
structure, tensors, metadata, claims, pickle safety, a deterministic subset of
sketches) are saved to the blob. Candidates are chosen by name from the usual
weight extensions; the bytes then decide (a file that is not a model file is
skipped, counted, and never read past its first range). A run stops reading when
its byte or request budget is spent; the listing goes on.

Asking again is how it resumes: a page whose reads were cut short (a killed run,
a spent budget) gets them on the next pass that lists its repos, since only blobs
without a fingerprint are read.

Example:
    >>> deep = Deep(HttpClient("cdn"), budget_bytes=10 * 2**30)  # doctest: +SKIP
    >>> crawl(host, store, deep=deep)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from modelscan.errors import FormatError, HostError, UnknownFormat
from modelscan.records import Fingerprint
from modelscan.registry.http import Budget, HttpClient

if TYPE_CHECKING:
    from modelscan.registry.base import CrawlSteps

logger = logging.getLogger(__name__)

# Names weights are published under (safetensors, PyTorch, GGUF/GGML, pickles, NumPy).
MODEL_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".ggml",
                  ".pkl", ".pickle", ".npy", ".npz")  # fmt: skip


@runtime_checkable
class DeepStore(Protocol):
    """What a deep crawl needs of the index beyond :class:`~registry.base.Store`."""

    def files_to_fingerprint(
        self, host: str, host_ids: Sequence[str], suffixes: tuple[str, ...]
    ) -> list[tuple[str, str, int | None, str]]:
        """``(sha256, url, size, path)`` of live files whose blob has no fingerprint."""

    def save_blob_fingerprint(self, fp: Fingerprint, *, seen_at: datetime) -> int:
        """Save a blob's fingerprint without a new occurrence."""


@dataclass
class Deep:
    """How a crawl reads the files it lists.

    Args:
        client: the client for the file reads (its own: CDN requests do not count
            against the host's API pacing).
        budget_bytes: stop reading after this many bytes in the run (None: no cap).
        budget_requests: stop after this many read requests in the run.
        claim: asked before each read with the blob's sha256; False means another
            worker reads it (the distributed crawl claims blobs in Redis).
    """

    client: HttpClient
    budget_bytes: int | None = None
    budget_requests: int | None = None
    claim: Callable[[str], bool] | None = None

    @classmethod
    def for_host(
        cls,
        host_client: HttpClient,
        *,
        budget: Budget | None = None,
        **options: Any,
    ) -> Deep:
        """File reads for a host: a client of their own (the CDN is not the API).

        Args:
            host_client: the host's API client (its name and token variable).
            budget: a shared budget for the reads (the Hub's resolver bucket).
            **options: ``budget_bytes``, ``budget_requests``, ``claim``.
        """
        files = HttpClient(f"{host_client.host} files",
                           token_env=host_client.token_env, budget=budget)  # fmt: skip
        return cls(files, **options)

    def spent(self, files: int, requests: int, read: int) -> bool:
        """Whether the run's budget is used up."""
        over_bytes = self.budget_bytes is not None and read >= self.budget_bytes
        over_requests = (
            self.budget_requests is not None and requests >= self.budget_requests
        )
        return over_bytes or over_requests


def read_files(steps: CrawlSteps, deep: Deep, host_ids: Sequence[str]) -> None:
    """Remote-fingerprint the unfingerprinted model files of ``host_ids``."""
    from modelscan.registry.remote import RemoteTarget, fetch_remote_fingerprint

    store, stats, host = steps.store, steps.stats, steps.host
    if not isinstance(store, DeepStore) or not host_ids:
        return
    client = host.client
    for sha, url, _size, path in store.files_to_fingerprint(
        host.name, host_ids, MODEL_SUFFIXES
    ):
        if deep.spent(stats.deep_files, stats.deep_requests, stats.deep_bytes):
            stats.deep_budget_spent = True
            return
        if deep.claim is not None and not deep.claim(sha):
            continue  # another worker holds this blob
        target = RemoteTarget(ref=url, url=url, host=host.name, token=client.token,
                              token_env=client.token_env, sha256=sha)  # fmt: skip
        try:
            fp = fetch_remote_fingerprint(target, client=deep.client)
        except UnknownFormat:
            stats.deep_skipped += 1  # named like weights, but the bytes say no
            continue
        except (HostError, FormatError) as exc:
            steps.error(f"deep {path} ({sha[:12]})", exc)
            continue
        store.save_blob_fingerprint(fp, seen_at=steps.clock())
        if fp.remote is not None:
            stats.deep_requests += fp.remote.requests
            stats.deep_bytes += fp.remote.bytes
        stats.deep_files += 1
        if steps.progress is not None:
            steps.progress(stats)
