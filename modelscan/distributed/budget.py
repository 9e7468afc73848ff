"""One request budget per host and token, shared by every worker through Redis.

A budget is "at most N requests in any W seconds" (the Hub: 1,000 API calls and
5,000 resolves per 5 minutes for a free token, https://huggingface.co/docs/hub/rate-limits).
It is kept as a sliding window in a Redis sorted set, checked and taken in one
Lua script. A slot counts from when it is taken until a whole window after its
answer came back, so the requests that reach the host in any W seconds were all
counted together when the last of them took its slot: N workers on one token
never send the host more than N requests in any window of W seconds, whatever
windows the host counts in and however long requests take on their way. A 429 or 503
that says how long to wait (``Retry-After``, ``RateLimit``) pauses the budget for
every worker at once.

The key names the host, the bucket (``api`` or ``resolve`` on the Hub) and a
digest of the token, never the token.

Example:
    >>> limits = {"api": Limit(1000, 300)}
    >>> budget = RedisBudget(redis, "huggingface", token, limits)  # doctest: +SKIP
    >>> HttpClient("huggingface", token=token, budget=budget)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

# KEYS[1] window set, KEYS[2] pause key; ARGV limit, window ms, ticket, in-flight
# ms. A slot taken is scored "answered by now + in-flight" until its request
# comes back (ANSWERED rescores it then), so it counts for a whole window after
# its request reached the host, however long the request took on its way.
# Returns 0 when a slot was taken, else the milliseconds to wait.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window + tonumber(ARGV[4]))
  return 0
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
if oldest > now then return math.min(250, window) end  -- all still on their way
return math.max(1, oldest + window - now)
"""
# KEYS[1] window set; ARGV[1] ticket. The slot's window now runs from this answer.
_ANSWERED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
return 0
"""
IN_FLIGHT = 75.0  # seconds a slot waits for its answer (above the client's timeouts)


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``requests`` in any ``seconds``."""

    requests: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Read ``N/SECONDS`` (``1000/300``).

        >>> Limit.parse("1000/300")
        Limit(requests=1000, seconds=300.0)

        Raises:
            ValueError: not two positive numbers.
        """
        count, _, seconds = text.partition("/")
        try:
            limit = cls(int(count), float(seconds or "nan"))
        except ValueError:
            limit = cls(0, 0.0)
        if limit.requests < 1 or not limit.seconds > 0:
            raise ValueError(f"a budget is N/SECONDS, both positive: {text!r}")
        return limit


# What the hosts document for one free token (None: no documented budget).
DEFAULT_LIMITS: dict[str, dict[str, Limit]] = {
    "huggingface": {"api": Limit(1000, 300), "resolve": Limit(5000, 300)},
}


def bucket_of(host: str, url: str) -> str:
    """The budget a request counts against: the Hub's resolver has its own."""
    return "resolve" if host == "huggingface" and "/resolve/" in url else "api"


def token_id(token: str | None) -> str:
    """A short digest naming a token in keys and logs (never the token)."""
    if not token:
        return "anonymous"
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class RedisBudget:
    """The :class:`~modelscan.registry.http.Budget` of one host and token, in Redis.

    Args:
        redis: a ``redis.Redis`` client.
        host: host name.
        token: the token whose budget this is (None: anonymous).
        limits: the limit of each bucket; a bucket without one is not limited.
        prefix: key prefix (one per index).
    """

    def __init__(
        self,
        redis: Any,
        host: str,
        token: str | None,
        limits: dict[str, Limit],
        *,
        prefix: str = "modelscan",
    ) -> None:
        self.redis = redis
        self.host = host
        self.limits = limits
        self._base = f"{prefix}:budget:{host}:{token_id(token)}"
        self._take = redis.register_script(_TAKE)
        self._answered = redis.register_script(_ANSWERED)
        self._tickets = itertools.count()
        self._me = uuid.uuid4().hex[:12]

    def reserve(self, url: str) -> tuple[float, str | None]:
        """Take a slot of the budget ``url`` counts against; else seconds to wait."""
        bucket = bucket_of(self.host, url)
        limit = self.limits.get(bucket)
        ticket = f"{self._me}-{next(self._tickets)}"
        if limit is None:
            return 0.0, ticket
        keys = [f"{self._base}:{bucket}", f"{self._base}:{bucket}:pause"]
        args = [limit.requests, int(limit.seconds * 1000), ticket,
                int(IN_FLIGHT * 1000)]  # fmt: skip
        wait_ms = int(self._take(keys=keys, args=args))
        return (0.0, ticket) if wait_ms == 0 else (wait_ms / 1000.0, None)

    def answered(self, url: str, ticket: str) -> None:
        """The request of ``ticket`` was answered: its slot's window starts now."""
        bucket = bucket_of(self.host, url)
        if bucket in self.limits:
            self._answered(keys=[f"{self._base}:{bucket}"], args=[ticket])

    def pause(self, url: str, seconds: float) -> None:
        """Hold back every worker on this budget for ``seconds`` (a host's wait)."""
        key = f"{self._base}:{bucket_of(self.host, url)}:pause"
        self.redis.set(key, "1", px=max(1, int(seconds * 1000)))
