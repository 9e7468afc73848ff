"""The whole exception hierarchy of modelscan.

The CLI catches only :class:`ModelscanError`; anything else is a bug and shows
its traceback.

Example:
    >>> raise TruncatedFile("m.safetensors", "header claims 900 bytes, file has 12")
    Traceback (most recent call last):
    modelscan.errors.TruncatedFile: m.safetensors: truncated: header claims ...
"""

from __future__ import annotations


class ModelscanError(Exception):
    """Base of every error modelscan raises on purpose."""


# --- scanner -------------------------------------------------------------------------


class FormatError(ModelscanError):
    """A file could not be read as the model format it claims to be.

    The message is one line: ``PATH: what is wrong``.
    """

    kind = "invalid"

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"{path}: {self.kind}: {reason}" if self.kind else f"{path}: {reason}"
        )


class UnknownFormat(FormatError):
    """Not a model file modelscan can read (empty, HTML, an LFS pointer, ...)."""

    kind = "not a model file"


class TruncatedFile(FormatError):
    """The file ends before the structure it declares."""

    kind = "truncated"


class HeaderTooLarge(FormatError):
    """A declared length or count is above modelscan's sanity caps."""

    kind = "header too large"


class InvalidHeader(FormatError):
    """The header parses but violates the format's rules."""

    kind = "invalid header"


class UnreadableFile(FormatError):
    """The path cannot be opened as a regular file (permissions, FIFO, directory)."""

    kind = "cannot read"


# --- registry ------------------------------------------------------------------------


class HostError(ModelscanError):
    """A model host failed to answer as documented."""

    def __init__(self, host: str, url: str, message: str) -> None:
        self.host = host
        self.url = url
        super().__init__(f"{host}: {message} ({url})")


class RateLimited(HostError):
    """The host answered 429 and kept doing so after the retries."""

    def __init__(self, host: str, url: str, retry_after: float | None) -> None:
        self.retry_after = retry_after
        wait = f"; retry after {retry_after:.0f}s" if retry_after is not None else ""
        super().__init__(host, url, f"rate limited{wait}; lower --rate or set a token")


class HostUnavailable(HostError):
    """The host stayed unreachable or kept answering 5xx after the retries."""


class UnexpectedResponse(HostError):
    """The host answered, but not in the documented shape."""

    def __init__(self, host: str, url: str, status: int | None, excerpt: str) -> None:
        self.status = status
        self.excerpt = excerpt[:200]
        code = f"HTTP {status}: " if status is not None else ""
        super().__init__(host, url, f"unexpected response: {code}{self.excerpt}")


class AuthRequired(HostError):
    """The host refused the request for want of a (better) token: 401 or 403.

    ``status`` is the HTTP status (None when no request was made: a token the
    host always needs is not set); ``error_code`` is the host's own word for it
    where it gives one (the Hub's ``X-Error-Code``, e.g. ``GatedRepo``).
    """

    def __init__(
        self,
        host: str,
        url: str,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
    ) -> None:
        self.status = status
        self.error_code = error_code
        super().__init__(host, url, message)

    @property
    def gated(self) -> bool:
        """Whether the host says the file is behind a gate (accept its terms first)."""
        return self.error_code == "GatedRepo"


# --- db ------------------------------------------------------------------------------


class ConfigError(ModelscanError):
    """A configuration file (the hosts' jurisdictions override) cannot be used."""


class StoreError(ModelscanError):
    """The index could not be opened, migrated or written."""


class ReadOnlyViolation(StoreError):
    """A statement tried to write through a read-only connection."""
