"""Messages to every worker: Redis pub/sub when there is Redis, in-process otherwise (then there is one worker).

Used for what must reach the worker that holds something: a Stop pressed in a tab (or an API cancel) served
by another worker than the one generating the answer, a revoked API key dropped from every worker's cache.
Pub/sub delivers to the workers listening at that moment: a worker cut off from Redis misses messages, so
whoever relies on the bus also bounds how long a stale state can last (the key cache expires, Stop can be
pressed again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from rubin_app.core.waiting import stop_task, wait_event
from rubin_app.services.redis_store import RedisStore

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], Awaitable[None]]
READ_SLICE = 0.25  # seconds one read may block (below the client's socket timeout)


class Bus:
    """Publish a message of a kind; every worker's handlers for that kind run."""

    def __init__(self, store: RedisStore | None, channel: str = "bus") -> None:
        self.store = store
        self.channel = store.key(channel) if store is not None else channel
        self.handlers: dict[str, list[Handler]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closed = False

    def on(self, kind: str, handler: Handler) -> None:
        """Run `handler(message)` for every message of `kind` (in every worker)."""
        self.handlers.setdefault(kind, []).append(handler)

    async def publish(self, kind: str, **data: Any) -> int:
        """Send to every worker listening (this one too once it listens: `ensure_listening`, done at start); the
        number of workers reached (0: Redis is away)."""
        message = {"kind": kind, **data}
        if self.store is None:
            await self._dispatch(message)
            return 1
        if self._closed:
            return 0
        store = self.store

        async def action(client: Any) -> int:
            return int(await client.publish(self.channel, json.dumps(message)))

        try:
            return await store.run(action, lambda: 0)
        except RedisError:
            return 0

    async def ensure_listening(self) -> None:
        """Start this worker's subscription (once per event loop); waits briefly until it is subscribed."""
        if self.store is None or self._closed:
            return
        task = self._listener
        if (
            task is not None
            and self._ready.is_set()
            and not task.done()
            and task.get_loop() is asyncio.get_running_loop()
        ):
            return  # listening already: the common case, on every API request (no wait, no task)
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._ready = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="rubin-bus")
        await wait_event(self._ready, 1.0)

    async def _listen(self) -> None:
        assert self.store is not None
        # Checks `_closed` too, not only its cancellation: the Redis client can lose a cancel() that lands as a
        # read ends (Python 3.11's wait_for), and a listener that ran on would hold close() forever.
        while not self._closed:
            pubsub = self.store.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._ready.set()
                while not self._closed:
                    raw = await pubsub.get_message(timeout=READ_SLICE)
                    if raw is not None and raw.get("type") == "message":
                        try:
                            message = json.loads(raw["data"])
                        except (ValueError, TypeError):
                            continue
                        if isinstance(message, dict):
                            await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("worker bus lost its Redis subscription (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _dispatch(self, message: dict[str, Any]) -> None:
        for handler in self.handlers.get(str(message.get("kind")), []):
            try:
                await handler(message)
            except Exception:
                log.exception("bus handler for %s failed", message.get("kind"))

    async def close(self) -> None:
        """Stop listening (for good: a late publish or `ensure_listening` does nothing after this)."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is None:
            return
        if listener.get_loop() is not asyncio.get_running_loop():  # started in another loop (a test's, say)
            if not listener.get_loop().is_closed():
                listener.get_loop().call_soon_threadsafe(listener.cancel)
            return
        if not await stop_task(listener):
            log.warning("worker bus: its listener did not stop; left behind")
