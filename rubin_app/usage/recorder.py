"""Usage accounting off the answer's path: ended runs are queued in memory and written in batches.

Every answer — from the chat UI, the OpenAI-compatible API or the REST API, cache hits included — gives
one `usage_records` row. The write is batched (one INSERT of many rows every `flush_seconds`, or as soon
as `batch` rows wait), so an answer never waits for it. Rows queued when the process is killed without
a shutdown are lost (at most `flush_seconds` of them); a normal stop flushes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.core.clock import utcnow
from rubin_app.core.waiting import wait_event
from rubin_app.generation.run import Run
from rubin_app.llm.types import StreamEvent
from rubin_app.usage.models import UsageRecord

log = logging.getLogger(__name__)
SessionFactory = Callable[..., AbstractAsyncContextManager[AsyncSession]]
CLOSE_WAIT = 10.0  # seconds close() gives a write under way
MAX_QUEUED = 100_000  # beyond this (the database away for long), the oldest rows are dropped and counted


class UsageRecorder:
    """A sink: one usage row per ended run, written in batches."""

    def __init__(self, session_factory: SessionFactory, *, flush_seconds: float = 1.0, batch: int = 500) -> None:
        self.session_factory = session_factory
        self.flush_seconds = flush_seconds
        self.batch = batch
        self.dropped = 0
        self._rows: list[dict[str, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def on_event(self, run: Run, event: StreamEvent) -> None:
        """Nothing to do while streaming."""

    async def on_finish(self, run: Run) -> None:
        """Queue the run's row (never waits for the database)."""
        if run.discarded:
            return  # the question was never saved: nothing happened for the user
        self._rows.append(
            {
                "created_at": utcnow(), "user_id": run.user_id, "api_key_id": run.api_key_id, "model": run.model[:200],
                "prompt_tokens": run.prompt_tokens or 0, "completion_tokens": run.completion_tokens or 0,
                "ttft_ms": run.ttft_ms, "duration_ms": run.duration_ms, "status": run.status.value,
                "error": run.error[:40], "cached": run.replay is not None, "source": run.source,
            }
        )  # fmt: skip
        if len(self._rows) > MAX_QUEUED:
            drop = len(self._rows) - MAX_QUEUED
            del self._rows[:drop]
            self.dropped += drop
        self._ensure_flusher()
        if len(self._rows) >= self.batch:
            self._wake.set()

    def _ensure_flusher(self) -> None:
        task = self._flusher
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._wake = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._loop(), name="rubin-usage")

    async def _loop(self) -> None:
        while self._flusher is asyncio.current_task():  # until close() lets go of it
            await wait_event(self._wake, self.flush_seconds)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> int:
        """Write what is queued now; the number of rows written (0 on failure: they stay queued)."""
        rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            async with self.session_factory() as session:
                await session.exec(insert(UsageRecord), params=rows)
        except Exception as exc:
            self._rows = rows + self._rows  # kept for the next attempt
            log.warning("could not write %d usage rows (kept for the next try): %s", len(rows), type(exc).__name__)
            return 0
        return len(rows)

    async def close(self) -> None:
        """Write what is queued and stop. A write under way ends first: cancelling it could lose its rows."""
        task, self._flusher = self._flusher, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            self._wake.set()
            _, stuck = await asyncio.wait({task}, timeout=CLOSE_WAIT)
            if stuck:  # the database does not answer in time: that write is given up
                log.warning("usage rows: a write did not end at close; given up")
                task.cancel()
        await self.flush()
