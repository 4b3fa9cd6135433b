"""The periodic retention run: one worker at a time (a Redis lock; in-process without Redis), every
RETENTION_INTERVAL_MINUTES (the last run's time is kept in the database, so restarts do not skip or repeat
it), and by hand with `python -m rubin_app retention run`."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.services import retention
from rubin_app.services.redis_store import RedisStore
from rubin_app.services.singleton_job import LastRun, SharedLock

log = logging.getLogger(__name__)

LAST_RUN_KEY = "retention_last_run"  # app_settings: when the last run finished (ISO time)
LOCK_SECONDS = 900  # the Redis lock lapses after this if its holder dies mid-run
FIRST_CHECK_SECONDS = 60.0  # after start, before the first look at whether a run is due


class Busy(Exception):
    """Another worker (or the command) is running retention right now."""


class RetentionJob:
    """Runs `retention.run` now and then, and on demand; never twice at once."""

    def __init__(self, settings: Settings, store: RedisStore | None, scope: retention.Scope) -> None:
        self.settings, self.store, self.scope = settings, store, scope
        self._local = asyncio.Lock()
        self._lock = SharedLock(store, "retention", LOCK_SECONDS)
        self._last = LastRun(scope, LAST_RUN_KEY)
        self._task: asyncio.Task[None] | None = None

    async def run_now(self) -> retention.Report:
        """One run, now; raises Busy when another one is going on."""
        if self._local.locked():
            raise Busy
        async with self._local, self._lock.held() as ours:
            if not ours:
                raise Busy
            report = await retention.run(scope=self.scope, settings=self.settings)
            await self._last.mark()
        log.info("retention run: %s", report.summary())
        return report

    async def run_if_due(self) -> retention.Report | None:
        """A run when the last one is an interval old (None: not due, or running elsewhere)."""
        last = await self._last.get()
        if last is not None and utcnow() - last < timedelta(minutes=self.settings.retention_interval_minutes):
            return None
        try:
            return await self.run_now()
        except Busy:
            return None

    async def _loop(self) -> None:
        await asyncio.sleep(FIRST_CHECK_SECONDS)
        # Look a few times per interval: a worker that died mid-interval is made up for soon.
        period = min(self.settings.retention_interval_minutes * 60 / 4, 900.0)
        while True:
            try:
                await self.run_if_due()
            except Exception:
                log.exception("retention run failed (the next one retries)")
            await asyncio.sleep(period)

    def start(self) -> None:
        """Start the periodic loop of this worker."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        """Stop the loop (a run in progress is cancelled between batches: what was deleted stays deleted)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
