"""What a job that runs in one worker at a time needs (retention, scheduled backups): a lock shared through Redis
(in-process without Redis, where there is one worker) and the time of its last run, kept in the database so that
restarts neither skip nor repeat a run."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.core.clock import utcnow
from rubin_app.models import AppSetting
from rubin_app.services.redis_store import RedisStore

Scope = Callable[[], AbstractAsyncContextManager[AsyncSession]]
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class SharedLock:
    """A lock every worker sees (`rubin:<name>:lock` in Redis), lapsing after `seconds` if its holder dies."""

    def __init__(self, store: RedisStore | None, name: str, seconds: int) -> None:
        self.store, self.name, self.seconds = store, name, seconds

    @asynccontextmanager
    async def held(self) -> AsyncIterator[bool]:
        """Yields True when this worker holds the lock (False: someone else does, or Redis is away and nobody can
        tell); released at the end, only if still ours. Without Redis there is one worker: always True."""
        token = secrets.token_hex(16)
        taken = await self._take(token)
        try:
            yield taken
        finally:
            if taken:
                await self._give(token)

    async def _take(self, token: str) -> bool:
        if self.store is None:
            return True
        key = self.store.key(self.name, "lock")

        async def take(client: Any) -> bool:
            return bool(await client.set(key, token, nx=True, ex=self.seconds))

        return await self.store.run(take, lambda: False)

    async def _give(self, token: str) -> None:
        if self.store is None:
            return
        key = self.store.key(self.name, "lock")

        async def give(client: Any) -> None:
            await client.eval(_RELEASE, 1, key, token)

        await self.store.run(give, lambda: None)


class LastRun:
    """When a job last finished, in `app_settings` under `key`."""

    def __init__(self, scope: Scope, key: str) -> None:
        self.scope, self.key = scope, key

    async def get(self) -> datetime | None:
        """The last finish, or None: never."""
        async with self.scope() as session:
            row = await session.get(AppSetting, self.key)
        return datetime.fromisoformat(json.loads(row.value)) if row is not None and row.value else None

    async def mark(self) -> None:
        """A run finished now."""
        async with self.scope() as session:
            row = await session.get(AppSetting, self.key) or AppSetting(key=self.key)
            row.value, row.updated_at = json.dumps(utcnow().isoformat()), utcnow()
            session.add(row)
