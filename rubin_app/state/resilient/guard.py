"""The breaker shared by Reflex's Redis state and token managers, and their Redis clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from rubin_app.core.waiting import stop_task
from rubin_app.services.redis_store import UNREACHABLE, describe

log = logging.getLogger(__name__)

# `UNREACHABLE` (refused, reset, timed out) is the app's one definition of "Redis is away": only these
# trip the breaker. Any other Redis error is Redis refusing one command (a bug, not an outage): it is
# logged with its message and raised to Reflex, and the state stays in Redis.
__all__ = ["UNREACHABLE", "RedisGuard", "make_client"]
RETRY_AFTER = 2.0  # seconds between probes while Redis is away
COMMAND_TIMEOUT = 2.0  # a Reflex state command (GET/MGET/EVAL of pickled states) taking longer is a failure
SWEEP_INTERVAL = 60.0  # how often forgotten tabs are dropped from the shadow


class RedisGuard:
    """The breaker shared by the state and token managers of one worker."""

    def __init__(self, client: aioredis.Redis, retry_after: float = RETRY_AFTER) -> None:
        self.client = client  # only for the probe's PING
        self.retry_after = retry_after
        self.up = True
        self.last_error = ""
        self.outages = 0
        self._up_event: asyncio.Event | None = None
        self._probe: asyncio.Task[None] | None = None
        self._on_down: list[Callable[[], None]] = []
        self._on_up: list[Callable[[], Awaitable[str]]] = []

    def on_down(self, callback: Callable[[], None]) -> None:
        """Call `callback()` when Redis becomes unreachable."""
        self._on_down.append(callback)

    def on_up(self, callback: Callable[[], Awaitable[str]]) -> None:
        """Await `callback()` (it returns a note for the log) when Redis answers again."""
        self._on_up.append(callback)

    def _event(self) -> asyncio.Event:
        if self._up_event is None:  # created in the worker's loop, not at import
            self._up_event = asyncio.Event()
            if self.up:
                self._up_event.set()
        return self._up_event

    async def wait_up(self) -> None:
        """Return once Redis is considered up."""
        if not self.up:
            await self._event().wait()

    def trip(self, exc: BaseException) -> None:
        """Redis did not answer: stop using it until the probe succeeds."""
        if not self.up:
            return
        self.up = False
        self.last_error = type(exc).__name__
        self.outages += 1
        self._event().clear()
        log.warning(
            "Redis unreachable (%s): tab state stays in this worker's memory and updates are routed locally "
            "until it answers again",
            self.last_error,
        )
        for callback in self._on_down:
            try:
                callback()
            except Exception:
                log.exception("Redis fallback: pausing a Redis user failed")
        self._probe = asyncio.get_running_loop().create_task(self._wait_for_redis(), name="rubin-redis-state-probe")

    async def _wait_for_redis(self) -> None:
        while True:
            await asyncio.sleep(self.retry_after)
            try:
                await self.client.ping()
            except UNREACHABLE:
                continue
            except Exception as exc:  # Redis answers but refuses PING (e.g. an ACL): not usable yet either
                if self.last_error != type(exc).__name__:
                    log.error("Redis refused the probe's PING (%s): %s", type(exc).__name__, describe(exc))
                self.last_error = type(exc).__name__
                continue
            break
        self.up = True
        self.last_error = ""
        self._event().set()
        notes = []
        for callback in self._on_up:
            try:
                notes.append(await callback())
            except UNREACHABLE as exc:
                self.trip(exc)  # gone again while resuming: a new probe takes over
            except Exception:
                log.exception("Redis fallback: resuming a Redis user failed")
            if not self.up:
                return
        log.warning("Redis is back: Reflex state and tab routing use it again (%s)", "; ".join(n for n in notes if n))

    async def close(self) -> None:
        """Stop probing and close the probe's client."""
        if self._probe is not None and not self._probe.done() and not await stop_task(self._probe):
            log.warning("Redis fallback: the probe did not stop; left behind")
        await self.client.aclose()


class _Client(aioredis.Redis):
    """Commands fail fast (connect and read timeouts, one quick retry) and trip the guard.

    Pub/sub listens on a second pool without a read timeout: a listener waits for notifications
    for as long as it takes, which a command timeout would cut.
    """

    guard: RedisGuard | None = None
    listener: aioredis.Redis

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run a command; a connection failure trips the guard before it propagates.

        Any other Redis error (WRONGTYPE, a script error, OOM...) leaves the guard alone: it is logged with
        Redis's message and raised. NOSCRIPT is not logged: redis-py's scripts answer it by loading the script.
        """
        try:
            return await super().execute_command(*args, **options)
        except UNREACHABLE as exc:
            if self.guard is not None:
                self.guard.trip(exc)
            raise
        except RedisError as exc:
            if not isinstance(exc, NoScriptError):
                command = str(args[0]).upper() if args else "?"
                log.error("Redis refused %s (%s): %s", command, type(exc).__name__, describe(exc))
            raise

    def pubsub(self, **kwargs: Any) -> PubSub:
        """A PubSub on the listener pool."""
        return self.listener.pubsub(**kwargs)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close both pools."""
        await self.listener.aclose(close_connection_pool=True)
        await super().aclose(close_connection_pool=close_connection_pool)


def make_client(url: str, connect_timeout: float, guard: RedisGuard | None = None) -> _Client:
    """A client for Reflex's managers (the URL comes from the config; it is never logged)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout,
        # One quick retry on a broken connection (a pooled one after a Redis restart); a timeout is not retried.
        "retry": Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=1, supported_errors=(RedisConnectionError,)),
        "retry_on_error": [RedisConnectionError],
    }
    client = _Client.from_url(url, socket_timeout=max(COMMAND_TIMEOUT, connect_timeout), **options)
    client.listener = aioredis.Redis.from_url(url, **options)
    client.guard = guard
    return client


# --------------------------------------------------------------------------- state trees
