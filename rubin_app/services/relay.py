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
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from redis.exceptions import RedisError

from rubin_app.generation.run import Run
from rubin_app.services.redis_store import RedisStore
from rubin_app.vault.sealing import UnreadableValue, UserCipher

log = logging.getLogger(__name__)
KEEP_SECONDS = 600
MAXLEN = 50_000


class Relay:
    """Publishes local runs; follows runs of other workers."""

    def __init__(self, store: RedisStore | None, interval: float = 0.04, cipher: UserCipher | None = None) -> None:
        self.store = store
        self.cipher = cipher  # the vault's Redis key: pieces of answers are never kept in clear
        self.interval = interval
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, run: Run) -> None:
        """Mirror a run's deltas into its stream (no-op without Redis)."""
        if self.store is None:
            return
        task = asyncio.create_task(self._publish_logged(run), name=f"relay-{run.message_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_logged(self, run: Run) -> None:
        """`_publish`, with a command Redis refuses (not an outage: the breaker handles those) logged."""
        try:
            await self._publish(run)
        except RedisError as exc:  # already logged with its message by the store; the answer itself goes on
            log.warning("live relay of answer %s stopped: %s", run.message_id, type(exc).__name__)

    async def _publish(self, run: Run) -> None:
        store = self.store
        assert store is not None
        key = store.key("run", run.message_id)

        async def add(fields: dict[str, str]) -> bool:
            async def action(client) -> bool:
                # The TTL is renewed with every entry: a stream whose run never writes `done` still expires.
                async with client.pipeline(transaction=False) as pipe:
                    await pipe.xadd(key, fields, maxlen=MAXLEN, approximate=True).expire(key, KEEP_SECONDS).execute()
                return True

            return await store.run(action, lambda: False)

        text_at = think_at = 0
        async with aclosing(run.follow(0, self.interval, reasoning_offset=0)) as deltas:
            async for text, think in deltas:
                # "o"/"ro": where the piece starts, so a follower notices entries lost in a Redis restart.
                t, r = self._seal(key, "t", text_at, text), self._seal(key, "r", think_at, think)
                if not await add({"t": t, "r": r, "o": str(text_at), "ro": str(think_at)}):
                    # Redis went away (the breaker logged it): a stream with a gap would garble the followers'
                    # text, so stop here; they end on their idle timeout and show the saved answer.
                    return
                text_at, think_at = text_at + len(text), think_at + len(think)
        if not run.handover:  # a handed-over answer is not done: the worker taking it over publishes it again
            await add({"done": "1"})

    async def follow(
        self, message_id: int, text_offset: int = 0, think_offset: int = 0, idle_timeout: float = 5.0
    ) -> AsyncIterator[tuple[str, str]]:
        """(new text, new reasoning) of another worker's run until its `done` entry.

        An answer published again from its start (resumed by another worker) is read on from what the tab shows.
        Ends quietly when Redis is away, when entries are missing (Redis restarted mid-answer) or when
        nothing arrives for `idle_timeout` seconds (the caller then falls back to the saved message).
        """
        store = self.store
        if store is None:
            return
        key = store.key("run", message_id)
        seen_text = seen_think = 0
        last_id = "0-0"
        # XREAD BLOCK in slices shorter than the client's read timeout (a longer block would end in a
        # TimeoutError after REDIS_TIMEOUT, i.e. a model slow to start would lose its live followers).
        block = max(0.01, min(idle_timeout, store.timeout / 2))
        idle_since = time.monotonic()
        try:
            while True:
                answer = await store.client.xread({key: last_id}, count=500, block=int(block * 1000))
                if not answer:
                    if time.monotonic() - idle_since >= idle_timeout:
                        return
                    continue
                idle_since = time.monotonic()
                for entry_id, fields in answer[0][1]:
                    last_id = entry_id
                    if fields.get(b"done"):
                        return
                    starts = int(fields.get(b"o", seen_text)), int(fields.get(b"ro", seen_think))
                    if starts == (0, 0) and (seen_text or seen_think):
                        # Published again from its start (the answer's worker stopped or died and another one
                        # resumed it: `reset`): read on, skipping again what the tab shows.
                        seen_text = seen_think = 0
                    elif starts != (seen_text, seen_think):
                        return  # entries were lost (Redis restarted mid-answer): the caller shows the saved answer
                    text = self._open(key, "t", seen_text, fields.get(b"t", b"").decode())
                    think = self._open(key, "r", seen_think, fields.get(b"r", b"").decode())
                    new_text, new_think = _skip(text, seen_text, text_offset), _skip(think, seen_think, think_offset)
                    seen_text += len(text)
                    seen_think += len(think)
                    text_offset += len(new_text)  # what the tab shows now (a stream published again skips it)
                    think_offset += len(new_think)
                    if new_text or new_think:
                        yield new_text, new_think
        except UnreadableValue:  # sealed by a key this worker does not hold (a rotation): show the saved answer
            log.warning("answer %s: a live piece did not decrypt; following stopped", message_id)
        except (RedisError, OSError) as exc:  # the store logged a refused command with its message
            log.warning("following answer %s through Redis failed: %s", message_id, type(exc).__name__)

    async def snapshot(self, message_id: int) -> tuple[str, str]:
        """The text and reasoning an answer's stream holds (its contiguous start; empty without Redis or on an
        error): the recovery of an answer whose worker died starts from here, ahead of its last saved flush."""
        store = self.store
        if store is None:
            return "", ""
        key = store.key("run", message_id)
        text, think = "", ""
        try:
            entries = await store.client.xrange(key)
            for _entry_id, fields in entries:
                if fields.get(b"done"):
                    break
                if (int(fields.get(b"o", -1)), int(fields.get(b"ro", -1))) != (len(text), len(think)):
                    break  # a gap (Redis restarted mid-answer): only the contiguous start is known
                text += self._open(key, "t", len(text), fields.get(b"t", b"").decode())
                think += self._open(key, "r", len(think), fields.get(b"r", b"").decode())
        except (RedisError, OSError, UnreadableValue) as exc:
            log.warning("answer %s: its live stream could not be read: %s", message_id, type(exc).__name__)
        return text, think

    async def reset(self, message_id: int) -> None:
        """Drop an answer's stream before it is published again from its start (a resumed answer): followers
        notice the new start and read it again from where their tab is."""
        if self.store is not None:
            key = self.store.key("run", message_id)

            async def drop(client: Any) -> None:
                await client.delete(key)

            await self.store.run(drop, lambda: None)

    def _seal(self, key: str, part: str, offset: int, text: str) -> str:
        """A piece as stored: bound to its stream, part and offset (a piece moved elsewhere does not open)."""
        return self.cipher.seal(f"{key}|{part}|{offset}", text) if self.cipher is not None and text else text

    def _open(self, key: str, part: str, offset: int, stored: str) -> str:
        return self.cipher.open(f"{key}|{part}|{offset}", stored) if self.cipher is not None else stored

    async def close(self) -> None:
        """Let the last publishers write their last entries."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)


def _skip(piece: str, seen_before: int, offset: int) -> str:
    """The part of `piece` (which starts at `seen_before` in the answer) beyond `offset`."""
    if seen_before + len(piece) <= offset:
        return ""
    return piece[max(0, offset - seen_before) :]
