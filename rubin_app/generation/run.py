"""One answer being generated: what it has streamed so far, how it ended, and who is told (its sinks).

A run belongs to the server, not to a websocket: closing the tab does not stop it; any number of
followers (tabs, an API stream) can attach, read what has been streamed so far and wait for more.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rubin_app.core.waiting import wait_event
from rubin_app.llm.types import ChatRequest, ToolCallDelta
from rubin_app.models import MessageStatus
from rubin_app.services.cache import CachedAnswer

if TYPE_CHECKING:
    from rubin_app.generation.sinks import Sink

SAVE_FAILED = "save_failed"  # the answer's final state could not be saved (err_save_failed)
QUOTA_SHORT = "quota_short"  # the question alone needs more of the token quota than the answer reserved


@dataclass(eq=False)
class Run:
    """One answer being generated."""

    message_id: int  # 0: not (yet) stored
    conversation_id: str
    user_id: int
    request: ChatRequest
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
    stop_requested: bool = False
    started: bool = False
    discarded: bool = False
    cache_key: str | None = None  # a cacheable request: a complete answer is stored under this key
    replay: CachedAnswer | None = None  # a cache hit: streamed from here instead of LocalAI
    slot: str | None = None  # the concurrency slot this answer holds (released at the end)
    key_ticket: str | None = None  # the API key's token reservation, if its key has a daily quota
    cut_short: bool = False  # max_tokens lowered to fit the run's token reservation
    handover: bool = False  # the worker is stopping: the answer stays `streaming`, another worker continues it
    pieces: int = 0  # text pieces received from LocalAI (its token count when it sends no usage)
    resumed: bool = False  # continues an answer a dead or stopped worker left unfinished (its text so far given)
    finish_reason: str = ""
    save_error: str = ""  # why the last save attempt failed (class and first line), for the logs
    source: str = "ui"  # who asked: ui, api (OpenAI-compatible), rest (/api/v1)
    api_key_id: int | None = None  # the API key that asked, if any
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI-shaped, assembled from the deltas
    sinks: list[Sink] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def model(self) -> str:
        """The model asked."""
        return self.request.model

    @property
    def quota_tokens(self) -> int:
        """The tokens the ended run counts against quotas: none for a cache hit, a failure before any text, or a
        run discarded unsaved."""
        if self.discarded or self.replay is not None or (self.status == MessageStatus.error and not self.text):
            return 0
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    @property
    def stored(self) -> bool:
        """Whether the answer is saved into a conversation (an API call may save nothing)."""
        return any(getattr(sink, "stores_answer", False) for sink in self.sinks)

    def add_tool_call(self, delta: ToolCallDelta) -> None:
        """Merge a tool-call piece into `tool_calls`."""
        while len(self.tool_calls) <= delta.index:
            self.tool_calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call = self.tool_calls[delta.index]
        call["id"] = delta.id or call["id"]
        call["function"]["name"] = delta.name or call["function"]["name"]
        call["function"]["arguments"] += delta.arguments

    @property
    def finished(self) -> bool:
        """True once the answer is saved in its final state."""
        return self._done.is_set()

    def notify(self) -> None:
        """Wake every follower."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_first_output(self) -> None:
        """Wait until the run has shown something (text, reasoning, a tool call) or ended."""
        while True:
            changed = self._changed
            if self.text or self.reasoning or self.tool_calls or self.finished:
                return
            await changed.wait()

    async def wait_done(self, timeout: float | None = None) -> bool:
        """Wait until the run is finished and saved."""
        return await wait_event(self._done, timeout)

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
