"""Route huggingface_hub's requests through our HttpClient: one failure policy.

huggingface_hub sends every request through one shared ``httpx2.Client`` and
retries some failures itself (``http_backoff``: real ``time.sleep``, its own
counts, waits of any length on 429). A crawl needs one policy for every request
it makes, the same as for the pages it fetches itself: counted against ``--rate``,
retried with our backoff (and our injected sleep in tests), and failing as a
:class:`~modelscan.errors.HostError`, never as an httpx exception.

huggingface_hub's documented hook for this is ``set_client_factory``
(https://huggingface.co/docs/huggingface_hub/package_reference/utilities#configure-http-backend).
We install a client whose transport hands each request for the crawled
endpoint to the :class:`~modelscan.registry.http.HttpClient` bound to the calling
thread with :func:`bound`. Anything else keeps the ordinary httpx transport: a
thread with none bound (any other use of huggingface_hub in the process), and
requests huggingface_hub makes on its own behalf to another origin (its
telemetry, such as the agent-harness registry it fetches from its import-time
endpoint; ``HF_HUB_DISABLE_TELEMETRY=1`` turns that off). What huggingface_hub
then receives is a final answer: a 2xx, a 3xx it follows itself, or a 4xx it
maps to its own errors (``GatedRepoError``, ``RepositoryNotFoundError``, ...).
Retried failures that persist are raised by our client as HostError;
huggingface_hub retries only httpx's own exception types, so these pass through
it untouched.

Example:
    >>> with bound(client, url):  # doctest: +SKIP
    ...     entries = list(HfApi(endpoint=url).list_repo_tree(repo_id, recursive=True))
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
from huggingface_hub import set_client_factory

from modelscan.registry.http import HttpClient

# Headers that described requests' raw body; the content handed on is decoded.
_DROPPED = frozenset({"content-encoding", "content-length", "transfer-encoding"})

_local = threading.local()
_installed = threading.Lock()
_done = False


@contextmanager
def bound(client: HttpClient, base_url: str) -> Iterator[None]:
    """Send this thread's huggingface_hub requests under ``base_url`` via ``client``."""
    install()
    previous = getattr(_local, "binding", None)
    _local.binding = (client, base_url.rstrip("/") + "/")
    try:
        yield
    finally:
        _local.binding = previous


class HubTransport(httpx2.BaseTransport):
    """An httpx transport that sends through the thread's bound HttpClient."""

    def __init__(self) -> None:
        self._plain = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` under the bound client's policy; its final answer."""
        binding: tuple[HttpClient, str] | None = getattr(_local, "binding", None)
        url = str(request.url)
        if binding is None or not url.startswith(binding[1]):
            return self._plain.handle_request(request)
        client = binding[0]
        answer = client.send(
            request.method,
            url,
            headers=dict(request.headers),
            content=request.read() or None,
            expect_json=None,
        )
        headers = [
            (k, v) for k, v in answer.headers.items() if k.lower() not in _DROPPED
        ]
        return httpx2.Response(
            answer.status_code, headers=headers, content=answer.content, request=request
        )

    def close(self) -> None:
        """Close the plain transport's connections."""
        self._plain.close()


def _client_factory() -> httpx2.Client:
    """huggingface_hub's default client settings, with our transport under them."""
    from huggingface_hub.utils._http import hf_request_event_hook

    return httpx2.Client(
        event_hooks={"request": [hf_request_event_hook]},
        follow_redirects=True,
        timeout=None,
        transport=HubTransport(),
    )


def install() -> None:
    """Make huggingface_hub's shared client use :class:`HubTransport` (once)."""
    global _done
    with _installed:
        if not _done:
            set_client_factory(_client_factory)
            _done = True
