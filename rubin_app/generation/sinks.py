"""What subscribes to a run: the answer's row in the database, the response cache, any after-answer rule.

A sink sees every event as it streams (`on_event`, synchronous and cheap: it is on the answer's path) and the
run once it has ended (`on_finish`, awaited in the order the sinks were given; the run counts as finished
only after every sink). A run without a `AnswerWriter` saves nothing (a stateless API call).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.generation.run import SAVE_FAILED, Run
from rubin_app.llm.types import StreamEvent
from rubin_app.models import MessageStatus
from rubin_app.services import chats
from rubin_app.services.cache import CachedAnswer, ResponseCache

log = logging.getLogger(__name__)

# session_scope: `lock_timeout` bounds how long a save waits for a lock (SQLite's write lock, a row lock).
SessionFactory = Callable[..., AbstractAsyncContextManager[AsyncSession]]
# Called inside the final save's transaction (the webhook outbox: the event is queued with the saved answer).
FinalSaveHook = Callable[[AsyncSession, Run], Awaitable[None]]


class Sink(Protocol):
    """Something told about a run's events and its end."""

    def on_event(self, run: Run, event: StreamEvent) -> None:
        """A streamed event (synchronous: never wait here)."""

    async def on_finish(self, run: Run) -> None:
        """The run has ended (its status, error and counts are final)."""


@dataclass
class SaveSettings:
    """How the answer's row is written.

    The final save is retried with backoff for about `save_retry_seconds`, each attempt waiting at most
    `save_lock_wait` for a lock; then the answer is marked `save_failed` in a last attempt that waits at
    most `mark_lock_wait`. Periodic saves (every `flush_seconds`) wait at most `save_retry_seconds`.
    """

    flush_seconds: float = 2.0
    save_retry_seconds: float = 5.0
    save_lock_wait: float = 1.0
    mark_lock_wait: float = 5.0


class AnswerWriter:
    """Sink: the answer's message row, saved every `flush_seconds` while it streams and in its final state.

    Also the early-start handshake: a run may start before its row exists (the request to LocalAI goes out
    while the question is being saved). Saves then wait for `committed()`; `discard()` (the rows could not
    be saved) makes them no-ops.
    """

    stores_answer = True

    def __init__(
        self, session_factory: SessionFactory, settings: SaveSettings, *, committed: bool = True,
        final_hooks: list[FinalSaveHook] | None = None,
    ) -> None:  # fmt: skip
        self.session_factory = session_factory
        self.settings = settings
        self.final_hooks = final_hooks or []
        self._committed = asyncio.Event()
        if committed:
            self._committed.set()
        self.discarded = False
        self.flushing: asyncio.Future[None] | None = None  # the last periodic save
        self._last_flush = time.monotonic()

    def committed(self) -> None:
        """The answer's row is in the database: saves may go ahead."""
        self._committed.set()

    def discard(self) -> None:
        """The rows could not be saved: nothing will be written."""
        self.discarded = True
        self._committed.set()

    def on_event(self, run: Run, event: StreamEvent) -> None:
        """Every `flush_seconds`, save what has streamed, in a task of its own, one at a time."""
        if time.monotonic() - self._last_flush < self.settings.flush_seconds:
            return
        if self.flushing is not None and not self.flushing.done():
            return
        self._last_flush = time.monotonic()
        # Not awaited: the stream never waits for the database (a busy SQLite write lock would stall the
        # answer), and a Stop cannot cut the transaction short (the driver's thread would keep the write lock
        # until garbage collection). `on_finish` waits for it, so the final save always comes last.
        self.flushing = asyncio.ensure_future(self._save(run, lock_timeout=self.settings.save_retry_seconds))
        self.flushing.add_done_callback(_log_failed_flush)

    async def on_finish(self, run: Run) -> None:
        """Save the final state (retried), or mark the answer `save_failed`."""
        try:
            if self.flushing is not None:
                await asyncio.wait([self.flushing])
            if not await self._save_final(run):
                await self._mark_unsaved(run)
        except Exception:
            log.exception("could not save answer %s", run.message_id)

    async def _save_final(self, run: Run) -> bool:
        """Save the run's final state, retried with backoff for about `save_retry_seconds` (a database
        that is briefly locked, busy or away); False when every attempt failed."""
        deadline = time.monotonic() + self.settings.save_retry_seconds
        delay, attempt = 0.05, 0
        while True:
            attempt += 1
            try:
                await self._save(run, lock_timeout=self.settings.save_lock_wait, final=True)
                if attempt > 1:
                    log.info("answer %s saved at attempt %d", run.message_id, attempt)
                return True
            except Exception as exc:
                run.save_error = describe(exc)
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("final save of answer %s failed %d times: %s", run.message_id, attempt, run.save_error)
                    return False
                log.info("final save of answer %s failed (attempt %d), retrying: %s", run.message_id, attempt,
                         run.save_error)  # fmt: skip
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 1.0)

    async def _mark_unsaved(self, run: Run) -> None:
        """The final save failed: the run ends as `save_failed` (its end event carries it to the tabs that
        follow it, which keep showing its text), and a last attempt writes that mark with the text."""
        run.error, run.error_detail = SAVE_FAILED, ""
        run.status = MessageStatus.interrupted if run.text else MessageStatus.error
        run.notify()
        try:
            await self._save(run, lock_timeout=self.settings.mark_lock_wait, final=True)
            log.warning("answer %s marked %s (%d characters saved)", run.message_id, SAVE_FAILED, len(run.text))
            return
        except Exception as exc:
            first = describe(exc)
        try:  # the text may be what the database refuses: at least the mark, the last periodic save's text stays
            await self._save(run, lock_timeout=self.settings.save_lock_wait, with_text=False)
            log.error(
                "answer %s marked %s without its final text (%d characters not saved): %s",
                run.message_id, SAVE_FAILED, len(run.text), first,
            )  # fmt: skip
        except Exception as exc:
            log.error(
                "answer %s could not be saved nor marked (%d characters lost; the reaper marks it later): %s",
                run.message_id, len(run.text), describe(exc),
            )  # fmt: skip
        log.debug("unsaved text of answer %s: %r", run.message_id, run.text)

    async def _save(
        self, run: Run, *, lock_timeout: float | None = None, with_text: bool = True, final: bool = False
    ) -> None:
        await self._committed.wait()
        if self.discarded:
            return
        text = {"content": run.text, "reasoning": run.reasoning} if with_text else {}
        async with self.session_factory(lock_timeout=lock_timeout) as session:
            await chats.update_message(
                session=session,
                user_id=run.user_id,
                message_id=run.message_id,
                **text,
                status=run.status,
                error=run.error,
                error_detail=run.error_detail,
                prompt_tokens=run.prompt_tokens,
                completion_tokens=run.completion_tokens,
                ttft_ms=run.ttft_ms,
                duration_ms=run.duration_ms if run.status != MessageStatus.streaming else None,
            )
            if final:
                for hook in self.final_hooks:
                    await hook(session, run)


class CacheWriter:
    """Sink: a complete answer to a cacheable request is stored under the request's key."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    def on_event(self, run: Run, event: StreamEvent) -> None:
        """Nothing to do while streaming."""

    async def on_finish(self, run: Run) -> None:
        """Store the answer unless it was a replay, incomplete, or cut by a quota's cap."""
        cut = run.cut_short and run.finish_reason == "length"  # ended by a quota's cap, not by the model
        if not run.cache_key or run.replay is not None or cut or run.status != MessageStatus.complete:
            return
        if run.tool_calls:
            return  # a tool call asks the caller to act: replaying it without them would be wrong
        answer = CachedAnswer(run.text, run.reasoning, run.completion_tokens)
        try:
            await self.cache.put(run.cache_key, answer)
        except Exception:
            log.exception("could not cache answer %s", run.message_id)


class AfterRun:
    """Sink: an async function called with the ended run (quota settlement, usage accounting)."""

    def __init__(self, callback: Callable[[Run], Awaitable[None]]) -> None:
        self.callback = callback

    def on_event(self, run: Run, event: StreamEvent) -> None:
        """Nothing to do while streaming."""

    async def on_finish(self, run: Run) -> None:
        """Call back; errors are logged (one sink's failure never keeps the others from running)."""
        try:
            await self.callback(run)
        except Exception:
            log.exception("after-answer step failed for answer %s", run.message_id)


def _log_failed_flush(flush: asyncio.Future[None]) -> None:
    if not flush.cancelled() and flush.exception() is not None:
        log.warning("periodic save failed (the final save retries): %s", describe(flush.exception()))


def describe(exc: BaseException | None) -> str:
    """An exception's class and first line, short: a database error's text may quote the statement."""
    if exc is None:
        return ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__
