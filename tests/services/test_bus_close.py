"""The worker bus stops listening when closed, even when its Redis client loses the cancel() of the close.

redis-py's pub/sub read can end normally as a cancel() lands (Python 3.11's wait_for drops the cancellation, and
the client library waits with it); a listener that only stopped on its cancellation then ran on, and a worker's
shutdown (and a test's teardown, once in CI) waited for it forever.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.client import PubSub

from rubin_app.services.bus import Bus
from rubin_app.services.redis_store import RedisStore


class LosesOneCancel(PubSub):
    """A real pub/sub connection whose read, once, ends as if the cancel() had landed just after it returned."""

    lost = 0

    async def get_message(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_message(*args, **kwargs)
        except asyncio.CancelledError:
            if LosesOneCancel.lost:
                raise
            LosesOneCancel.lost += 1
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
            return None


async def test_close_stops_a_listener_whose_client_lost_the_cancel(redis_url: str) -> None:
    store = RedisStore(redis_url, timeout=2)
    client = store.client
    client.pubsub = lambda **kw: LosesOneCancel(client.connection_pool, **kw)  # type: ignore[method-assign]
    bus = Bus(store)
    got: list[dict[str, Any]] = []

    async def remember(message: dict[str, Any]) -> None:
        got.append(message)

    bus.on("hello", remember)
    await bus.ensure_listening()
    assert await bus.publish("hello", n=1) == 1  # it listens: one worker reached
    for _ in range(40):
        if got:
            break
        await asyncio.sleep(0.05)
    assert got == [{"kind": "hello", "n": 1}]
    listener = bus._listener
    assert listener is not None
    closing = asyncio.create_task(bus.close())
    done, _ = await asyncio.wait({closing}, timeout=2)  # (not wait_for: its own cancel would end the listener)
    assert closing in done, "close() still waits for the listener"
    await store.close()
    assert LosesOneCancel.lost == 1  # the close's cancel() was lost...
    assert listener.done()  # ...and the listener stopped all the same
    assert await bus.publish("hello", n=2) == 0  # closed for good
