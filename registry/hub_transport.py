"""Route huggingface_hub's requests through our HttpClient: one failure policy.

huggingface_hub sends every request through one shared ``httpx2.Client`` and
retries some failures itself (``http_backoff``: real ``time.sleep``, its own
counts, waits of any length on 429). A crawl needs one policy for every request
it makes, the same as for the pages it fetches itself: counted against ``--rate``,
retried with our backoff (and our injected sleep in tests), and failing as a
:class:`~modelscan.errors.HostError`, never as an httpx exception.

huggingface_hub's documented hook for this is ``set_client_factory``
(https://huggingface.co/docs/huggingface_hub/package_reference/utilities#configure-http-backend).
We install a client whose transport hands each request to the
:class:`~modelscan.registry.http.HttpClient` bound to the calling thread with
:func:`bound`; a thread with none bound (any other use of huggingface_hub in the
process) gets the ordinary httpx transport. What huggingface_hub then receives
is a final answer: a 2xx, a 3xx it follows itself, or a 4xx it maps to its own
errors (``GatedRepoError``, ``RepositoryNotFoundError``, ...). Retried failures
that persist are raised by our client as HostError; huggingface_hub retries
only httpx's own exception types, so these pass through it untouched.

Example:
    >>> with bound(client):  # doctest: +SKIP
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
def bound(client: HttpClient) -> Iterator[None]:
    """Send huggingface_hub's requests of this thread through ``client`` meanwhile."""
    install()
    previous = getattr(_local, "client", None)
    _local.client = client
    try:
        yield
    finally:
        _local.client = previous


class HubTransport(httpx2.BaseTransport):
    """An httpx transport that sends through the thread's bound HttpClient."""

    def __init__(self) -> None:
        self._plain = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` under the bound client's policy; its final answer."""
        client: HttpClient | None = getattr(_local, "client", None)
        if client is None:
            return self._plain.handle_request(request)
        answer = client.send(
            request.method,
            str(request.url),
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
