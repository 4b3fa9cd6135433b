"""The periodic retention run: one worker at a time (a Redis lock; in-process without Redis), every
RETENTION_INTERVAL_MINUTES (the last run's time is kept in the database, so restarts do not skip or repeat
it), and by hand with `python -m rubin_app retention run`."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.models import AppSetting
from rubin_app.services import retention
from rubin_app.services.redis_store import RedisStore

log = logging.getLogger(__name__)

LAST_RUN_KEY = "retention_last_run"  # app_settings: when the last run finished (ISO time)
LOCK_SECONDS = 900  # the Redis lock lapses after this if its holder dies mid-run
FIRST_CHECK_SECONDS = 60.0  # after start, before the first look at whether a run is due
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class Busy(Exception):
    """Another worker (or the command) is running retention right now."""


class RetentionJob:
    """Runs `retention.run` now and then, and on demand; never twice at once."""

    def __init__(self, settings: Settings, store: RedisStore | None, scope: retention.Scope) -> None:
        self.settings, self.store, self.scope = settings, store, scope
        self._local = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def _acquire(self, token: str) -> bool:
        """Take the shared lock (False: someone holds it, or Redis is away and nobody can tell)."""
        if self.store is None:
            return True
        store = self.store

        async def take(client: Any) -> bool:
            return bool(await client.set(store.key("retention", "lock"), token, nx=True, ex=LOCK_SECONDS))

        return await store.run(take, lambda: False)

    async def _release(self, token: str) -> None:
        if self.store is None:
            return
        store = self.store

        async def release(client: Any) -> None:
            await client.eval(_RELEASE, 1, store.key("retention", "lock"), token)

        await store.run(release, lambda: None)

    async def run_now(self) -> retention.Report:
        """One run, now; raises Busy when another one is going on."""
        if self._local.locked():
            raise Busy
        async with self._local:
            token = secrets.token_hex(16)
            if not await self._acquire(token):
                raise Busy
            try:
                report = await retention.run(scope=self.scope, settings=self.settings)
                await self._mark_done()
            finally:
                await self._release(token)
        log.info("retention run: %s", report.summary())
        return report

    async def _last_run(self) -> datetime | None:
        async with self.scope() as session:
            row = await session.get(AppSetting, LAST_RUN_KEY)
        return datetime.fromisoformat(json.loads(row.value)) if row is not None and row.value else None

    async def _mark_done(self) -> None:
        async with self.scope() as session:
            row = await session.get(AppSetting, LAST_RUN_KEY) or AppSetting(key=LAST_RUN_KEY)
            row.value, row.updated_at = json.dumps(utcnow().isoformat()), utcnow()
            session.add(row)

    async def run_if_due(self) -> retention.Report | None:
        """A run when the last one is an interval old (None: not due, or running elsewhere)."""
        last = await self._last_run()
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
