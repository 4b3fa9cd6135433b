"""Scheduled backups: every BACKUP_INTERVAL_HOURS, one worker at a time (a Redis lock; in-process without
Redis), the last run's time kept in the database; afterwards, scheduled backups beyond BACKUP_KEEP are
deleted from the destination (only files the schedule made: `rubin-scheduled-…`)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.backup import service
from rubin_app.backup.destinations import default_target, open_destination
from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.models import AppSetting
from rubin_app.services.redis_store import RedisStore

log = logging.getLogger(__name__)

Scope = Callable[[], AbstractAsyncContextManager[AsyncSession]]
LAST_RUN_KEY = "backup_last_run"  # app_settings: when the last scheduled backup finished (ISO time)
LOCK_SECONDS = 6 * 3600  # the Redis lock lapses after this if its holder dies mid-backup
FIRST_CHECK_SECONDS = 90.0
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


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
        self._task: asyncio.Task[None] | None = None

    async def _lock(self, token: str, take: bool) -> bool:
        if self.store is None:
            return True
        store, key = self.store, self.store.key("backup", "lock")

        async def call(client: Any) -> bool:
            if take:
                return bool(await client.set(key, token, nx=True, ex=LOCK_SECONDS))
            await client.eval(_RELEASE, 1, key, token)
            return True

        return await store.run(call, lambda: False)

    async def _last_run(self) -> datetime | None:
        async with self.scope() as session:
            row = await session.get(AppSetting, LAST_RUN_KEY)
        return datetime.fromisoformat(json.loads(row.value)) if row is not None and row.value else None

    async def _mark_done(self) -> None:
        async with self.scope() as session:
            row = await session.get(AppSetting, LAST_RUN_KEY) or AppSetting(key=LAST_RUN_KEY)
            row.value, row.updated_at = json.dumps(utcnow().isoformat()), utcnow()
            session.add(row)

    async def run_if_due(self) -> service.Made | None:
        """A scheduled backup (and pruning) when the last is an interval old; None: not due or running elsewhere."""
        interval = timedelta(hours=self.settings.backup_interval_hours)
        last = await self._last_run()
        if (last is not None and utcnow() - last < interval) or self._local.locked():
            return None
        async with self._local:
            token = secrets.token_hex(16)
            if not await self._lock(token, take=True):
                return None
            try:
                made = await asyncio.to_thread(service.make_backup, self.settings, made_by="scheduled")
                await self._mark_done()
                pruned = await asyncio.to_thread(prune, self.settings)
            finally:
                await self._lock(token, take=False)
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
