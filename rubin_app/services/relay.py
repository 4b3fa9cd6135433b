"""Live answers across workers: a run publishes its coalesced deltas to a Redis stream, so a tab
served by another worker (a reload, a second tab, a phone) follows the answer live.

Without Redis there is one worker and followers read the run directly; this module is then idle.
The stream (`rubin:run:<message id>`) holds every delta of the answer and a final `done` entry; it
expires a few minutes after the answer ends. A follower first reads everything so far (XRANGE),
skips what its tab already shows, then blocks on new entries (XREAD).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from redis.exceptions import RedisError

from rubin_app.services.generation import Run
from rubin_app.services.redis_store import RedisStore

log = logging.getLogger(__name__)
KEEP_SECONDS = 600
MAXLEN = 50_000


class Relay:
    """Publishes local runs; follows runs of other workers."""

    def __init__(self, store: RedisStore | None, interval: float = 0.04) -> None:
        self.store = store
        self.interval = interval
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, run: Run) -> None:
        """Mirror a run's deltas into its stream (no-op without Redis)."""
        if self.store is None:
            return
        task = asyncio.create_task(self._publish(run), name=f"relay-{run.message_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, run: Run) -> None:
        store = self.store
        assert store is not None
        key = store.key("run", run.message_id)
        try:
            async for text, think in run.follow(0, self.interval, reasoning_offset=0):
                if store.up:
                    await store.client.xadd(key, {"t": text, "r": think}, maxlen=MAXLEN, approximate=True)
            await store.client.xadd(key, {"done": "1"}, maxlen=MAXLEN, approximate=True)
            await store.client.expire(key, KEEP_SECONDS)
        except (RedisError, OSError) as exc:
            log.warning("live relay of answer %s stopped: %s", run.message_id, type(exc).__name__)

    async def follow(
        self, message_id: int, text_offset: int = 0, think_offset: int = 0, idle_timeout: float = 5.0
    ) -> AsyncIterator[tuple[str, str]]:
        """(new text, new reasoning) of another worker's run until its `done` entry.

        Ends quietly when Redis is away or nothing arrives for `idle_timeout` seconds (the caller then
        falls back to the saved message).
        """
        store = self.store
        if store is None:
            return
        key = store.key("run", message_id)
        seen_text = seen_think = 0
        last_id = "0-0"
        try:
            while True:
                answer = await store.client.xread({key: last_id}, count=500, block=int(idle_timeout * 1000))
                if not answer:
                    return
                for entry_id, fields in answer[0][1]:
                    last_id = entry_id
                    if fields.get(b"done"):
                        return
                    text = fields.get(b"t", b"").decode()
                    think = fields.get(b"r", b"").decode()
                    new_text, new_think = _skip(text, seen_text, text_offset), _skip(think, seen_think, think_offset)
                    seen_text += len(text)
                    seen_think += len(think)
                    if new_text or new_think:
                        yield new_text, new_think
        except (RedisError, OSError) as exc:
            log.warning("following answer %s through Redis failed: %s", message_id, type(exc).__name__)

    async def close(self) -> None:
        """Let the last publishers write their `done` entries."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)


def _skip(piece: str, seen_before: int, offset: int) -> str:
    """The part of `piece` (which starts at `seen_before` in the answer) beyond `offset`."""
    if seen_before + len(piece) <= offset:
        return ""
    return piece[max(0, offset - seen_before) :]
