"""Turning a presented API key into its principal quickly, and forgetting revoked keys on every worker at once.

A resolved key is kept in this worker for `ttl` seconds (a DB lookup per request would cost more than the
rest of a cached answer). Revoking a key publishes its hash on the worker bus: every worker drops it at once.
Without Redis there is one worker, and the bus is in-process; a key revoked by the command line in another
process is then refused within `ttl`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.accounts import api_keys
from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.core.clock import utcnow
from rubin_app.services.bus import Bus

log = logging.getLogger(__name__)
SessionFactory = Callable[..., AbstractAsyncContextManager[AsyncSession]]
REVOKED = "api_key_revoked"
MAX_CACHED = 10_000


class KeyResolver:
    """Cached key lookups, invalidated over the bus; last use written at most once a minute per key."""

    def __init__(self, session_factory: SessionFactory, bus: Bus, *, ttl: float = 5.0) -> None:
        self.session_factory = session_factory
        self.bus = bus
        self.ttl = ttl
        self._cache: dict[str, tuple[float, KeyPrincipal | None, str]] = {}
        self._touched: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        bus.on(REVOKED, self._on_revoked)

    async def resolve(self, key: str, ip: str = "") -> tuple[KeyPrincipal | None, str]:
        """(principal, "") or (None, error code) for a presented key."""
        if not api_keys.looks_like_key(key):
            return None, "invalid_api_key"
        await self.bus.ensure_listening()
        digest = api_keys.hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.ttl:
            principal, error = hit[1], hit[2]
        else:
            async with self.session_factory(read_only=True) as session:
                principal, error = await api_keys.resolve_key(session=session, key=key)
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = (now, principal, error)
        if principal is not None and principal.expires_at is not None and principal.expires_at <= utcnow():
            return None, "expired_api_key"
        if principal is not None:
            self._touch(principal.key_id, ip)
        return principal, error

    async def revoked(self, key_hash: str) -> None:
        """Tell every worker that a key was revoked (call after the revocation is committed)."""
        self._cache.pop(key_hash, None)
        await self.bus.publish(REVOKED, hash=key_hash)

    def forget_all(self) -> None:
        """Drop every cached key (permissions changed: a key whose user lost the API permission must stop)."""
        self._cache.clear()

    async def _on_revoked(self, message: dict[str, Any]) -> None:
        self._cache.pop(str(message.get("hash")), None)

    def _touch(self, key_id: int, ip: str) -> None:
        now = time.monotonic()
        if now - self._touched.get(key_id, -1e9) < api_keys.LAST_USE_EVERY.total_seconds():
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(key_id, ip))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_touch(self, key_id: int, ip: str) -> None:
        try:
            async with self.session_factory() as session:
                await api_keys.touch_key(session=session, key_id=key_id, ip=ip)
        except Exception as exc:
            log.warning("could not record an API key's last use: %s", type(exc).__name__)
