"""Scheduled backups: every BACKUP_INTERVAL_HOURS, one worker at a time (a Redis lock; in-process without
Redis), the last run's time kept in the database; afterwards, scheduled backups beyond BACKUP_KEEP are
deleted from the destination (only files the schedule made: `rubin-scheduled-…`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.backup import service
from rubin_app.backup.destinations import default_target, open_destination
from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.services.redis_store import RedisStore
from rubin_app.services.singleton_job import LastRun, SharedLock

log = logging.getLogger(__name__)

Scope = Callable[[], AbstractAsyncContextManager[AsyncSession]]
LAST_RUN_KEY = "backup_last_run"  # app_settings: when the last scheduled backup finished (ISO time)
LOCK_SECONDS = 6 * 3600  # the Redis lock lapses after this if its holder dies mid-backup
FIRST_CHECK_SECONDS = 90.0


def prune(settings: Settings, target: str | None = None) -> list[str]:
    """Delete the schedule's backups beyond BACKUP_KEEP (oldest first); returns the deleted names."""
    dest = open_destination(target or default_target(settings), settings)
    made = [e for e in dest.list() if e.made_by == "scheduled"]  # names sort by time
    doomed = made[: max(0, len(made) - settings.backup_keep)]
    for entry in doomed:
        dest.delete(entry.name)
    return [e.name for e in doomed]


class BackupJob:
    """Runs a scheduled backup when one is due; never two at once across workers."""

    def __init__(self, settings: Settings, store: RedisStore | None, scope: Scope) -> None:
        self.settings, self.store, self.scope = settings, store, scope
        self._local = asyncio.Lock()
        self._lock = SharedLock(store, "backup", LOCK_SECONDS)
        self._last = LastRun(scope, LAST_RUN_KEY)
        self._task: asyncio.Task[None] | None = None

    async def run_if_due(self) -> service.Made | None:
        """A scheduled backup (and pruning) when the last is an interval old; None: not due or running elsewhere."""
        interval = timedelta(hours=self.settings.backup_interval_hours)
        last = await self._last.get()
        if (last is not None and utcnow() - last < interval) or self._local.locked():
            return None
        async with self._local, self._lock.held() as ours:
            if not ours:
                return None
            made = await asyncio.to_thread(service.make_backup, self.settings, made_by="scheduled")
            await self._last.mark()
            pruned = await asyncio.to_thread(prune, self.settings)
        log.info("scheduled backup %s; deleted %d older scheduled backups", made.entry.name, len(pruned))
        return made

    async def _loop(self) -> None:
        await asyncio.sleep(FIRST_CHECK_SECONDS)
        period = min(self.settings.backup_interval_hours * 3600 / 4, 900.0)
        while True:
            try:
                await self.run_if_due()
            except Exception as exc:  # logged without a traceback's locals: never a key
                log.error("scheduled backup failed (the next check retries): %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(period)

    def start(self) -> None:
        """Start this worker's loop (nothing when BACKUP_INTERVAL_HOURS is 0)."""
        if self._task is None and self.settings.backup_interval_hours > 0:
            self._task = asyncio.create_task(self._loop(), name="backup")

    async def stop(self) -> None:
        """Stop the loop (a backup in progress is abandoned: its partial file never gets a backup's name)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
