"""The project's own Redis use: one asyncio client (pooled, short timeouts, one retry) and a breaker.

When Redis does not answer, callers get their in-process fallback at once and the store is only
probed again after `retry_after` seconds, so a dead Redis costs one timeout per probe, not one per
request. The first failure logs a warning; the first success after it logs that Redis is back.

Only "Redis is unreachable" (refused, reset, timed out: `UNREACHABLE`) opens the breaker. Any other
Redis error (a script error, WRONGTYPE, OOM, NOPERM...) means Redis answered and refused this command:
it is a bug or a misconfiguration, not an outage, so it is logged at ERROR with Redis's message and
raised to the caller, and the breaker stays closed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
T = TypeVar("T")

# What "Redis is unreachable" looks like: redis-py's connection and timeout errors (refused, reset, timed
# out, also a failed AUTH or a server still LOADING: not usable either) and raw socket errors. Anything
# else is Redis answering "no" to one command.
UNREACHABLE: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
MESSAGE_MAX = 300  # longest piece of Redis's error message that is logged
# "ERR unknown command 'x', with args beginning with: 'a' 'b'": Redis echoes arguments (keys, values): cut them.
_ECHOED_ARGS = re.compile(r",? *with args beginning with:.*$", re.IGNORECASE | re.DOTALL)


def describe(exc: BaseException) -> str:
    """Redis's error message for the log: without echoed arguments, one line, bounded."""
    text = _ECHOED_ARGS.sub("", str(exc)).replace("\r", " ").replace("\n", " ").strip()
    return text[:MESSAGE_MAX] + ("..." if len(text) > MESSAGE_MAX else "")


class RedisStore:
    """A Redis client that degrades to the caller's fallback while Redis is away."""

    def __init__(self, url: str, *, timeout: float = 0.5, retry_after: float = 3.0, prefix: str = "rubin:") -> None:
        self.url = url
        self.timeout = timeout
        self.prefix = prefix
        self.retry_after = retry_after
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=1),
            retry_on_error=[ConnectionError, TimeoutError, OSError],
            health_check_interval=15,
            max_connections=64,
        )
        self.down_since: float | None = None
        self.last_error: str = ""

    @property
    def up(self) -> bool:
        """False while Redis is considered away."""
        return self.down_since is None

    def key(self, *parts: object) -> str:
        """A namespaced key."""
        return self.prefix + ":".join(str(p) for p in parts)

    async def run(
        self, action: Callable[[aioredis.Redis], Awaitable[T]], fallback: Callable[[], Awaitable[T] | T]
    ) -> T:
        """`action(client)`, or the fallback while Redis is away (the breaker re-probes now and then)."""
        if self.down_since is not None and time.monotonic() - self.down_since < self.retry_after:
            return await _maybe_await(fallback())
        try:
            result = await action(self.client)
        except MaxConnectionsError:
            # Every pooled connection is busy in this process: Redis is fine, this call takes the fallback.
            log.warning("Redis connection pool of this worker is full: one call used its in-process fallback")
            return await _maybe_await(fallback())
        except UNREACHABLE as exc:
            if self.down_since is None:
                log.warning("Redis unavailable (%s): using in-process fallbacks until it is back", type(exc).__name__)
            self.down_since = time.monotonic()
            self.last_error = type(exc).__name__
            return await _maybe_await(fallback())
        except RedisError as exc:
            self._answered()  # Redis is there (it refused the command): not an outage
            log.error("Redis refused a command (%s): %s", type(exc).__name__, describe(exc))
            raise
        self._answered()
        return result

    def _answered(self) -> None:
        if self.down_since is not None:
            log.warning("Redis is back: shared cache and limits resume")
            self.down_since = None
            self.last_error = ""

    async def ping(self) -> bool:
        """Whether Redis answers now (for health)."""

        async def ping(client: aioredis.Redis) -> bool:
            return bool(await client.ping())

        try:
            return await self.run(ping, lambda: False)
        except RedisError:  # PING refused (e.g. an ACL without it): logged by `run`; not usable, not away
            return False

    async def close(self) -> None:
        """Close the pool."""
        await self.client.aclose()


async def _maybe_await(value: Any) -> Any:
    if isinstance(value, Awaitable):
        return await value
    return value
