"""Effective permissions per user, kept briefly in each worker and dropped on every worker when they change.

Any change of groups, members, defaults or roles calls `changed()`: this worker forgets at once and the worker
bus tells the others (the API key cache too: a key whose user lost the API permission stops at once). A worker
cut off from Redis misses the message; its copies still expire after `ttl` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.accounts import groups
from rubin_app.accounts.permissions import Permissions
from rubin_app.services.bus import Bus

SessionFactory = Callable[..., AbstractAsyncContextManager[AsyncSession]]
CHANGED = "permissions_changed"
MAX_CACHED = 10_000


class PermissionCache:
    """`get(user_id)`: the user's effective permissions, from this worker's copy when younger than `ttl`."""

    def __init__(self, session_factory: SessionFactory, bus: Bus, *, ttl: float = 10.0) -> None:
        self.session_factory = session_factory
        self.bus = bus
        self.ttl = ttl
        self._cache: dict[int, tuple[float, Permissions]] = {}
        self._generation = 0  # bumped by every change: a lookup that raced one is not kept
        self.listeners: list[Callable[[], None]] = []  # told of every change (the API key cache)
        bus.on(CHANGED, self._on_changed)

    async def get(self, user_id: int) -> Permissions:
        """What the user may do now."""
        await self.bus.ensure_listening()
        hit = self._cache.get(user_id)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        generation = self._generation
        async with self.session_factory(read_only=True) as session:
            permissions = await groups.effective(session=session, user_id=user_id)
        if generation == self._generation:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[user_id] = (time.monotonic(), permissions)
        return permissions

    async def changed(self) -> None:
        """Permissions changed (call after the change is committed): every worker forgets its copies."""
        self._forget()
        await self.bus.publish(CHANGED)

    def _forget(self) -> None:
        self._generation += 1
        self._cache.clear()
        for listener in self.listeners:
            listener()

    async def _on_changed(self, _: dict[str, Any]) -> None:
        self._forget()
