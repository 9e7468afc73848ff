"""What a distributed crawl run needs beside the index: its open tasks, counts, flags.

All of it lives in Redis under one prefix per index (a digest of its URL), so
runs of two indexes never mix. The index still holds every row, cursor, error
and the run itself; this is only bookkeeping of work in flight:

- ``todo``: the keys of the tasks enqueued and not finished (a page ``page:<cursor>``,
  a repo ``item:<id>@<revision>``). A task adds its children before it removes
  itself, so the set is empty only when the whole crawl is done; the task whose
  removal empties it enqueues the finish.
- ``listed``: pages whose listing and children are committed, so a redelivered
  page task does nothing twice.
- ``stats``: the run's counters, summed over tasks; ``failed``: why the host
  stopped; ``done``: the final status, once the run is closed in the index.

Example:
    >>> state = RunState(redis, prefix, run_id)  # doctest: +SKIP
    >>> state.add(["page:(first)"])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelscan.db.engine import hide_password

EXPIRE = 7 * 24 * 3600  # seconds the bookkeeping of a run is kept

# KEYS[1] the todo set; ARGV[1] the finished task's key. 1 when it emptied the set.
_FINISH = """
local removed = redis.call('SREM', KEYS[1], ARGV[1])
if removed == 1 and redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0
"""


def index_prefix(db_url: str) -> str:
    """The Redis key prefix of one index: a digest of its URL without the password."""
    safe = hide_password(db_url)
    return "modelscan:" + hashlib.sha256(safe.encode()).hexdigest()[:12]


class RunState:
    """The Redis bookkeeping of one distributed run.

    Args:
        redis: a ``redis.Redis`` client (``decode_responses=True``).
        prefix: the index's prefix (:func:`index_prefix`).
        run_id: the run's id in the index.
    """

    def __init__(self, redis: Any, prefix: str, run_id: int) -> None:
        self.redis = redis
        self.key = f"{prefix}:run:{run_id}"
        self._finish = redis.register_script(_FINISH)

    def remember(self, spec: dict[str, Any]) -> None:
        """Keep the run's crawl spec, for whoever closes a run left unclosed."""
        self.redis.set(f"{self.key}:spec", json.dumps(spec), ex=EXPIRE)

    def spec(self) -> dict[str, Any] | None:
        """The crawl spec :meth:`remember` kept, or None."""
        value = self.redis.get(f"{self.key}:spec")
        return None if value is None else dict(json.loads(value))

    def claim_blob(self, sha256: str) -> bool:
        """True for the one task that gets to read ``sha256`` in this run."""
        key = f"{self.key}:reading:{sha256}"
        return bool(self.redis.set(key, 1, nx=True, ex=EXPIRE))

    def add(self, keys: list[str]) -> None:
        """Register tasks about to be enqueued (before the parent finishes)."""
        if keys:
            pipe = self.redis.pipeline()
            pipe.sadd(f"{self.key}:todo", *keys)
            pipe.expire(f"{self.key}:todo", EXPIRE)
            pipe.execute()

    def finish(self, key: str) -> bool:
        """Mark one task finished; True when it was the last one of the run."""
        return bool(self._finish(keys=[f"{self.key}:todo"], args=[key]))

    def open_tasks(self) -> int:
        """How many tasks of the run are enqueued or running."""
        return int(self.redis.scard(f"{self.key}:todo"))

    def listed(self, page: str) -> bool:
        """Whether ``page`` was listed and its children enqueued already."""
        return bool(self.redis.sismember(f"{self.key}:listed", page))

    def mark_listed(self, page: str) -> None:
        """Record that ``page`` is listed and its children enqueued."""
        self.redis.sadd(f"{self.key}:listed", page)
        self.redis.expire(f"{self.key}:listed", EXPIRE)

    def add_counts(self, counts: dict[str, int]) -> None:
        """Add one task's counters to the run's."""
        pipe = self.redis.pipeline()
        for name, value in counts.items():
            if value:
                pipe.hincrby(f"{self.key}:stats", name, int(value))
        pipe.expire(f"{self.key}:stats", EXPIRE)
        pipe.execute()

    def counts(self) -> dict[str, int]:
        """The run's counters so far."""
        raw = self.redis.hgetall(f"{self.key}:stats")
        return {k: int(v) for k, v in raw.items()}

    def item_failed(self) -> int:
        """Count an item that failed twice; return the failures in a row."""
        return int(self.redis.incr(f"{self.key}:failing"))

    def item_done(self) -> None:
        """An item succeeded: the failures in a row start again from zero."""
        self.redis.set(f"{self.key}:failing", 0, ex=EXPIRE)

    def fail(self, message: str) -> None:
        """Record why the host stopped (the first reason wins)."""
        self.redis.set(f"{self.key}:failed", message, nx=True, ex=EXPIRE)

    def failure(self) -> str | None:
        """Why the host stopped, or None."""
        value = self.redis.get(f"{self.key}:failed")
        return None if value is None else str(value)

    def claim_finish(self) -> bool:
        """True for the one caller that gets to close the run."""
        return bool(self.redis.set(f"{self.key}:finishing", 1, nx=True, ex=EXPIRE))

    def close(self, status: str) -> None:
        """Record the run's final status (after the index has it)."""
        self.redis.set(f"{self.key}:done", status, ex=EXPIRE)

    def closed(self) -> str | None:
        """The final status once the run is closed, else None."""
        value = self.redis.get(f"{self.key}:done")
        return None if value is None else str(value)
