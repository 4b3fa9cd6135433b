"""Answer generation that outlives the browser tab: one task per answer, saved as it streams.

A run belongs to the server, not to a websocket: closing the tab does not stop it; any number of
followers (tabs) can attach, read what has been streamed so far and wait for more.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, aclosing
from dataclasses import dataclass, field

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.models import MessageStatus
from rubin_app.services import chats
from rubin_app.services.cache import CachedAnswer, ResponseCache
from rubin_app.services.context import estimate_tokens
from rubin_app.services.llm import LLMClient, LLMError, StreamEvent

log = logging.getLogger(__name__)

# session_scope: `lock_timeout` bounds how long a save waits for a lock (SQLite's write lock, a row lock).
SessionFactory = Callable[..., AbstractAsyncContextManager[AsyncSession]]
SAVE_FAILED = "save_failed"  # the answer's final state could not be saved (err_save_failed)
QUOTA_SHORT = "quota_short"  # the question alone needs more of the token quota than the answer reserved


@dataclass(eq=False)
class Run:
    """One answer being generated."""

    message_id: int
    conversation_id: str
    user_id: int
    model: str
    text: str = ""
    reasoning: str = ""
    status: MessageStatus = MessageStatus.streaming
    error: str = ""
    error_detail: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: int | None = None
    duration_ms: int | None = None
    task: asyncio.Task[None] | None = None
    after_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    flushing: asyncio.Future[None] | None = None  # the last periodic save
    stop_requested: bool = False
    started: bool = False
    # Set once the answer's row is committed; saves wait for it (the request starts earlier).
    persisted: asyncio.Event | None = None
    discarded: bool = False
    cache_key: str | None = None  # a cacheable request: a complete answer is stored under this key
    replay: CachedAnswer | None = None  # a cache hit: streamed from here instead of LocalAI
    slot: str | None = None  # the concurrency slot this answer holds (released at the end)
    cut_short: bool = False  # max_tokens lowered to fit the run's token reservation
    finish_reason: str = ""
    save_error: str = ""  # why the last save attempt failed (class and first line), for the logs
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        """True once the answer is saved in its final state."""
        return self._done.is_set()

    def notify(self) -> None:
        """Wake every follower."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_done(self, timeout: float | None = None) -> bool:
        """Wait until the run is finished and saved."""
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def follow(
        self,
        text_offset: int = 0,
        interval: float | Callable[[], float] = 0.04,
        reasoning_offset: int = 0,
        *,
        wakeups: bool = False,
    ) -> AsyncIterator[tuple[str, str]]:
        """Yield (new text, new reasoning) pieces, coalesced to one per `interval` seconds.

        `interval` may be a function, asked after every piece: the caller can then widen it under load.
        With `wakeups`, a `notify()` that brought nothing new yields ("", "") too (the caller has news).
        """
        woken = False
        while True:
            changed = self._changed
            new_text, new_reasoning = self.text[text_offset:], self.reasoning[reasoning_offset:]
            if new_text or new_reasoning:
                text_offset += len(new_text)
                reasoning_offset += len(new_reasoning)
                yield new_text, new_reasoning
                if wait := (interval() if callable(interval) else interval):
                    await asyncio.sleep(wait)
                continue
            if self.finished:
                return
            if woken:
                woken = False
                yield "", ""
            done_wait = asyncio.ensure_future(self._done.wait())
            change_wait = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({done_wait, change_wait}, return_when=asyncio.FIRST_COMPLETED)
                woken = wakeups
            finally:
                done_wait.cancel()
                change_wait.cancel()


def _log_failed_flush(flush: asyncio.Future[None]) -> None:
    if not flush.cancelled() and flush.exception() is not None:
        log.warning("periodic save failed (the final save retries): %s", _describe(flush.exception()))


def _describe(exc: BaseException | None) -> str:
    """An exception's class and first line, short: a database error's text may quote the statement."""
    if exc is None:
        return ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


@dataclass
class GenerationSettings:
    """Knobs of the generation loop."""

    flush_seconds: float = 2.0
    max_tokens: int | None = None
    temperature: float | None = None
    # The final save is retried with backoff for about `save_retry_seconds`, each attempt waiting at most
    # `save_lock_wait` for a lock; then the answer is marked `save_failed` in a last attempt that waits at
    # most `mark_lock_wait`. Periodic saves wait at most `save_retry_seconds` (the final save waits for them).
    save_retry_seconds: float = 5.0
    save_lock_wait: float = 1.0
    mark_lock_wait: float = 5.0


class GenerationManager:
    """Starts, tracks and stops the answers generated by this process."""

    def __init__(
        self,
        client: LLMClient,
        session_factory: SessionFactory,
        settings: GenerationSettings,
        cache: ResponseCache | None = None,
    ) -> None:
        self.client = client
        self.session_factory = session_factory
        self.settings = settings
        self.cache = cache
        # Called with every run once it is saved (token quotas, concurrency slots); errors are logged.
        self.on_finish: list[Callable[[Run], Awaitable[None]]] = []
        # The tokens a run may use in all (its quota reservation), or None: its answer is held to them.
        self.token_budget: Callable[[Run], int | None] | None = None
        self._runs: dict[int, Run] = {}
        self._finishing: set[asyncio.Task[None]] = set()

    def get(self, *, user_id: int, message_id: int) -> Run | None:
        """The user's live run for a message, or None."""
        run = self._runs.get(message_id)
        return run if run is not None and run.user_id == user_id else None

    def active_ids(self) -> list[int]:
        """Message ids being generated here (the orphan reaper skips them)."""
        return list(self._runs)

    def start(
        self,
        *,
        user_id: int,
        conversation_id: str,
        message_id: int | None,
        model: str,
        messages: list[dict[str, str]],
        persisted: asyncio.Event | None = None,
        cache_key: str | None = None,
        replay: CachedAnswer | None = None,
        slot: str | None = None,
    ) -> Run:
        """Begin generating into a 'streaming' assistant message.

        With `message_id=None` the request to LocalAI starts before the row exists (lower time to
        first token); the caller then calls `bind()` and sets `persisted` after its commit, or
        `discard()` when saving failed.
        """
        run = Run(
            message_id=message_id or 0, conversation_id=conversation_id, user_id=user_id, model=model,
            persisted=persisted, cache_key=cache_key, replay=replay, slot=slot,
        )  # fmt: skip
        if message_id:
            self._runs[message_id] = run
        run.task = asyncio.create_task(self._generate(run, messages), name=f"answer-{message_id or 'new'}")
        run.task.add_done_callback(lambda _task: self._finish_unstarted(run))
        return run

    def bind(self, run: Run, *, message_id: int, conversation_id: str) -> None:
        """Attach an early-started run to its saved answer row."""
        run.message_id, run.conversation_id = message_id, conversation_id
        self._runs[message_id] = run

    def discard(self, run: Run) -> None:
        """Drop an early-started run whose rows could not be saved."""
        run.discarded = True
        if run.task is not None:
            run.task.cancel()
        if run.persisted is not None:
            run.persisted.set()

    async def stop(self, *, user_id: int, message_id: int) -> bool:
        """Stop a run (the partial answer is kept); False when there is none."""
        run = self.get(user_id=user_id, message_id=message_id)
        return run is not None and await self.stop_run(run)

    async def stop_run(self, run: Run, *, wait: bool = True) -> bool:
        """Stop this run, also one whose row is still being saved (it is saved as interrupted once it is
        there); `wait` for the final save. False when it is over already."""
        if run.task is None or run.finished:
            return False
        run.stop_requested = True
        run.task.cancel()
        if wait:
            await run.wait_done(timeout=10)
        return True

    async def shutdown(self) -> None:
        """Stop every run, saving what was streamed."""
        for run in list(self._runs.values()):
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(*(r.wait_done(5) for r in list(self._runs.values())))

    def _finish_unstarted(self, run: Run) -> None:
        """A task cancelled before its first step never ran `_generate`: save and release the run here."""
        if run.started or run.finished:
            return
        run.status = MessageStatus.interrupted
        run.error = "stopped" if run.stop_requested else "shutdown"
        run.duration_ms = 0
        task = asyncio.ensure_future(self._finish(run))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    def _max_tokens(self, run: Run, messages: list[dict[str, str]]) -> int | None:
        """max_tokens of the request: the setting, lowered to what the run's token reservation leaves after
        its prompt (estimated), so that an answer never uses more of a quota than it reserved; 0 when the
        prompt alone does not fit (the run then ends without asking LocalAI)."""
        budget = self.token_budget(run) if self.token_budget is not None and run.replay is None else None
        if budget is None:
            return self.settings.max_tokens
        room = max(0, budget - sum(estimate_tokens(m.get("content") or "") for m in messages))
        if self.settings.max_tokens is not None and self.settings.max_tokens <= room:
            return self.settings.max_tokens
        run.cut_short = True  # a request that differs from the cached one: its end may not be cached
        return room

    async def _generate(self, run: Run, messages: list[dict[str, str]]) -> None:
        run.started = True
        started = time.monotonic()
        last_flush = started
        pieces = 0
        try:
            max_tokens = self._max_tokens(run, messages)
            if max_tokens == 0:
                run.status, run.error = MessageStatus.error, QUOTA_SHORT
                return
            stream = (
                _replay(run.replay)
                if run.replay is not None
                else self.client.stream_chat(
                    run.model, messages, max_tokens=max_tokens, temperature=self.settings.temperature
                )
            )
            # aclosing: a Stop that lands during a DB flush (outside the stream) must still close the request.
            async with aclosing(stream):
                async for event in stream:
                    if event.kind == "content":
                        if run.ttft_ms is None:
                            run.ttft_ms = int((time.monotonic() - started) * 1000)
                        run.text += event.text
                        pieces += 1
                    elif event.kind == "reasoning":
                        run.reasoning += event.text
                    elif event.kind == "usage":
                        run.prompt_tokens = event.usage.get("prompt_tokens", run.prompt_tokens)
                        run.completion_tokens = event.usage.get("completion_tokens", run.completion_tokens)
                    elif event.kind == "finish":
                        run.finish_reason = event.finish_reason or ""
                    run.notify()
                    if time.monotonic() - last_flush >= self.settings.flush_seconds and (
                        run.flushing is None or run.flushing.done()
                    ):
                        last_flush = time.monotonic()
                        # A task of its own, not awaited: the stream never waits for the database (a busy
                        # SQLite write lock would stall the answer), and a Stop cannot cut the transaction
                        # short (the driver's thread would keep the write lock until garbage collection).
                        # One at a time; `_finish` waits for it, so the final save always comes last.
                        run.flushing = asyncio.ensure_future(
                            self._save(run, lock_timeout=self.settings.save_retry_seconds)
                        )
                        run.flushing.add_done_callback(_log_failed_flush)
            run.status = MessageStatus.complete
        except asyncio.CancelledError:
            run.status = MessageStatus.interrupted
            run.error = "stopped" if run.stop_requested else "shutdown"
        except LLMError as exc:
            run.status = MessageStatus.interrupted if run.text else MessageStatus.error
            run.error, run.error_detail = exc.code, exc.detail
            log.warning("answer %s failed: %s", run.message_id, exc.code)
        except Exception:
            log.exception("answer %s crashed", run.message_id)
            run.status = MessageStatus.interrupted if run.text else MessageStatus.error
            run.error = "internal"
        finally:
            run.duration_ms = int((time.monotonic() - started) * 1000)
            if run.completion_tokens is None and pieces:
                run.completion_tokens = pieces  # servers without usage: one delta is about one token
            await asyncio.shield(self._finish(run))

    async def _finish(self, run: Run) -> None:
        try:
            if run.flushing is not None:
                await asyncio.wait([run.flushing])
            if not await self._save_final(run):
                await self._mark_unsaved(run)
        except Exception:
            log.exception("could not save answer %s", run.message_id)
        try:
            cut = run.cut_short and run.finish_reason == "length"  # ended by a quota's cap, not by the model
            if (
                self.cache is not None and run.cache_key and run.replay is None and not cut
                and run.status == MessageStatus.complete
            ):  # fmt: skip
                answer = CachedAnswer(run.text, run.reasoning, run.completion_tokens)
                try:
                    await self.cache.put(run.cache_key, answer)
                except Exception:
                    log.exception("could not cache answer %s", run.message_id)
            for hook in self.on_finish:
                try:
                    await hook(run)
                except Exception:
                    log.exception("finish hook failed for answer %s", run.message_id)
        finally:
            # Finished only once accounted for: whoever waits for the run (Stop, Regenerate, shutdown, a test)
            # then finds its concurrency slot free and its tokens counted.
            self._runs.pop(run.message_id, None)
            run._done.set()
            run.notify()

    async def _save_final(self, run: Run) -> bool:
        """Save the run's final state, retried with backoff for about `save_retry_seconds` (a database
        that is briefly locked, busy or away); False when every attempt failed."""
        deadline = time.monotonic() + self.settings.save_retry_seconds
        delay, attempt = 0.05, 0
        while True:
            attempt += 1
            try:
                await self._save(run, lock_timeout=self.settings.save_lock_wait)
                if attempt > 1:
                    log.info("answer %s saved at attempt %d", run.message_id, attempt)
                return True
            except Exception as exc:
                run.save_error = _describe(exc)
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
            await self._save(run, lock_timeout=self.settings.mark_lock_wait)
            log.warning("answer %s marked %s (%d characters saved)", run.message_id, SAVE_FAILED, len(run.text))
            return
        except Exception as exc:
            first = _describe(exc)
        try:  # the text may be what the database refuses: at least the mark, the last periodic save's text stays
            await self._save(run, lock_timeout=self.settings.save_lock_wait, with_text=False)
            log.error(
                "answer %s marked %s without its final text (%d characters not saved): %s",
                run.message_id, SAVE_FAILED, len(run.text), first,
            )  # fmt: skip
        except Exception as exc:
            log.error(
                "answer %s could not be saved nor marked (%d characters lost; the reaper marks it later): %s",
                run.message_id, len(run.text), _describe(exc),
            )  # fmt: skip
        log.debug("unsaved text of answer %s: %r", run.message_id, run.text)

    async def _save(self, run: Run, *, lock_timeout: float | None = None, with_text: bool = True) -> None:
        if run.persisted is not None:
            await run.persisted.wait()
        if run.discarded:
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


async def _replay(answer: CachedAnswer) -> AsyncIterator[StreamEvent]:
    """A cached answer as a stream: the same events a live one sends, word by word, at once."""
    if answer.reasoning:
        yield StreamEvent("reasoning", answer.reasoning)
    for piece in re.findall(r"\S*\s*", answer.text):
        if piece:
            yield StreamEvent("content", piece)
            await asyncio.sleep(0)
    if answer.completion_tokens:
        yield StreamEvent("usage", usage={"completion_tokens": answer.completion_tokens})
    yield StreamEvent("finish", finish_reason="stop")
