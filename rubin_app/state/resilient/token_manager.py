"""Reflex's Redis token manager that routes locally while Redis is away."""

from __future__ import annotations

import logging
import pickle
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from reflex.utils.token_manager import LocalTokenManager, RedisTokenManager

from rubin_app.state.resilient.guard import UNREACHABLE, RedisGuard

log = logging.getLogger(__name__)


class ResilientTokenManager(RedisTokenManager):
    """RedisTokenManager that links tabs locally (LocalTokenManager) while Redis is away."""

    def __init__(self, redis: aioredis.Redis, guard: RedisGuard, forget: Callable[[str], None] | None = None) -> None:
        """Share the guard; `forget(token)` is called when a tab leaves this worker while Redis is up."""
        super().__init__(redis)
        self.guard = guard
        self._forget = forget
        self._emit_update: Callable[..., Any] | None = None
        self._gone: set[str] = set()  # left while Redis was away: their records may still be there
        guard.on_down(self._pause)
        guard.on_up(self._resume)

    def _owned(self, token: str, sid: str | None = None) -> bool:
        record = self.token_to_socket.get(token)
        return record is not None and record.instance_id == self.instance_id and (sid is None or record.sid == sid)

    async def link_token_to_sid(self, token: str, sid: str) -> str | None:
        """Link a tab's socket (local only while Redis is away)."""
        if not self.guard.up:
            return await LocalTokenManager.link_token_to_sid(self, token, sid)
        return await super().link_token_to_sid(token, sid)

    async def disconnect_token(self, token: str, sid: str) -> None:
        """Unlink a tab's socket; its state copy in this worker is dropped when Redis holds it."""
        mine = self._owned(token, sid)
        if not self.guard.up:
            if mine:
                await LocalTokenManager.disconnect_token(self, token, sid)
                self._gone.add(token)
            return
        await super().disconnect_token(token, sid)
        if mine and self._forget is not None:
            self._forget(token)

    async def enumerate_tokens(self) -> AsyncIterator[str]:
        """All tabs (this worker's only, while Redis is away)."""
        if not self.guard.up:
            for token in list(self.token_to_socket):
                yield token
            return
        async for token in super().enumerate_tokens():
            yield token

    async def is_token_connected(self, token: str) -> bool:
        """Whether the tab has a socket (known here, while Redis is away)."""
        if not self.guard.up:
            return token in self.token_to_socket
        return await super().is_token_connected(token)

    async def _get_token_owner(self, token: str, refresh: bool = False) -> str | None:
        if not self.guard.up:
            record = self.token_to_socket.get(token)
            return record.instance_id if record is not None else None
        return await super()._get_token_owner(token, refresh=refresh)

    async def emit_lost_and_found(self, token: str, update: Any) -> bool:
        """Route an update to another worker's tab (impossible while Redis is away: dropped)."""
        if not self.guard.up:
            return False
        return await super().emit_lost_and_found(token, update)

    def ensure_lost_and_found_task(self, emit_update: Callable[..., Any]) -> None:
        """Listen for other workers' updates (from when Redis is back, if it is away)."""
        self._emit_update = emit_update
        if self.guard.up:
            super().ensure_lost_and_found_task(emit_update)

    def _ensure_socket_record_task(self) -> None:
        if self.guard.up:
            super()._ensure_socket_record_task()

    async def _subscribe_socket_record_updates(self) -> None:
        await self.guard.wait_up()
        try:
            await super()._subscribe_socket_record_updates()
        except UNREACHABLE as exc:
            self.guard.trip(exc)
            await self.guard.wait_up()

    async def _subscribe_lost_and_found_updates(self, emit_update: Callable[..., Any]) -> None:
        await self.guard.wait_up()
        try:
            await super()._subscribe_lost_and_found_updates(emit_update)
        except UNREACHABLE as exc:
            self.guard.trip(exc)
            await self.guard.wait_up()

    def _pause(self) -> None:
        """Redis went away: stop the listeners (they restart when it is back)."""
        for name in ("_socket_record_task", "_lost_and_found_task"):
            task = getattr(self, name)
            if task is not None and not task.done():
                task.cancel()
            setattr(self, name, None)

    async def _resume(self) -> str:
        """Redis is back: store the records of the tabs connected here, drop stale ones, listen again."""
        stored = 0
        for token, record in list(self.token_to_socket.items()):
            if record.instance_id == self.instance_id:
                await self.redis.set(self._get_redis_key(token), pickle.dumps(record), ex=self.token_expiration)
                stored += 1
        for token in list(self._gone):
            if token not in self.token_to_socket:
                raw = await self.redis.get(self._get_redis_key(token))
                if raw and pickle.loads(raw).instance_id == self.instance_id:
                    await self.redis.delete(self._get_redis_key(token))
            self._gone.discard(token)
        if self.token_to_socket:
            super()._ensure_socket_record_task()
        if self._emit_update is not None:
            super().ensure_lost_and_found_task(self._emit_update)
        return f"{stored} tab links stored"
