"""Reflex's Redis state manager that keeps each worker's tabs in memory while Redis is away."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from reflex.istate.manager.redis import StateManagerRedis
from reflex.istate.manager.token import BaseStateToken, StateToken
from reflex.state import BaseState

from rubin_app.state.resilient.guard import SWEEP_INTERVAL, UNREACHABLE, RedisGuard

log = logging.getLogger(__name__)


def _walk(root: BaseState) -> Iterator[BaseState]:
    """Every state object attached to a tree."""
    stack = [root]
    while stack:
        state = stack.pop()
        yield state
        stack.extend(state.substates.values())


def _assemble(root_cls: type[BaseState], parts: dict[str, BaseState]) -> dict[str, BaseState]:
    """A complete state tree from the known parts (fresh states where none is known), by full name.

    The same linking as StateManagerRedis.get_state does for the states it loads.
    """
    flat: dict[str, BaseState] = {}

    def build(cls: type[BaseState], parent: BaseState | None) -> BaseState:
        name = cls.get_full_name()
        state = parts.get(name)
        if state is None:
            state = cls(parent_state=parent, init_substates=False, _reflex_internal_init=True)
        else:
            state.parent_state = parent
        flat[name] = state
        for sub in cls.get_substates():
            state.substates[sub.get_name()] = build(sub, state)
        return state

    build(root_cls, None)
    return flat


@dataclasses.dataclass
class ResilientStateManager(StateManagerRedis):
    """StateManagerRedis that keeps serving tabs from this worker's memory while Redis is away."""

    guard: RedisGuard | None = None
    # Whether a tab (client token) is connected to this worker (set by install: the token manager knows).
    connected: Callable[[str], bool] | None = None

    # cache key -> {state full name -> state object} (non-BaseState tokens: {"": object})
    _shadow: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict, init=False)
    _tokens: dict[str, StateToken] = dataclasses.field(default_factory=dict, init=False)
    _used: dict[str, float] = dataclasses.field(default_factory=dict, init=False)
    # Tabs whose shadow must be written to Redis before Redis is used for them again.
    _restore: set[str] = dataclasses.field(default_factory=set, init=False)
    # One local lock per tab: its events run one at a time here, whichever store holds the state.
    _local_locks: dict[str, asyncio.Lock] = dataclasses.field(default_factory=dict, init=False)
    _swept: float = dataclasses.field(default=0.0, init=False)

    def __post_init__(self) -> None:
        """Check the guard; register the outage callbacks."""
        super().__post_init__()
        if self.guard is None:
            raise ValueError("ResilientStateManager needs a RedisGuard")
        # Opportunistic leases write states later, from their own tasks, where a failed write would be lost;
        # the local per-tab lock already serialises a tab's events in this worker.
        self._oplock_enabled = False
        self.guard.on_down(self._pause)
        self.guard.on_up(self._resume)

    # ---- the switch -------------------------------------------------------------------------
    def _lock_for(self, key: str) -> asyncio.Lock:
        lock = self._local_locks.get(key)
        if lock is None:
            lock = self._local_locks[key] = asyncio.Lock()
        return lock

    def _redis_usable(self, key: str) -> bool:
        assert self.guard is not None
        return self.guard.up and key not in self._restore

    @contextlib.asynccontextmanager
    async def modify_state(self, token: StateToken | str, **context: Any) -> AsyncIterator[Any]:
        """Modify a tab's state under its lock: in Redis while it answers, else in this worker's memory."""
        token = self._coerce_token(token)
        key = token.cache_key
        async with self._lock_for(token.lock_key):
            assert self.guard is not None
            if self.guard.up and key in self._restore:
                await self._write_back(key)  # trips the guard on failure
            if self.guard.up:
                in_redis = super().modify_state(token, **context)
                try:
                    state = await in_redis.__aenter__()
                except UNREACHABLE as exc:
                    self.guard.trip(exc)
                else:
                    try:
                        yield state
                    except BaseException:
                        error = sys.exc_info()
                        try:
                            suppressed = await in_redis.__aexit__(*error)
                        except UNREACHABLE as exc:
                            self.guard.trip(exc)
                            self._keep(token, state, saved=False)
                            raise error[1] from None
                        if not suppressed:
                            raise
                        return
                    try:
                        await in_redis.__aexit__(None, None, None)
                    except UNREACHABLE as exc:  # the event ran; its changes stay here until Redis is back
                        self.guard.trip(exc)
                        self._keep(token, state, saved=False)
                    else:
                        self._keep(token, state, saved=True)
                    return
            state = self._local_state(token)
            try:
                yield state
            finally:
                self._keep(token, state, saved=False)

    async def get_state(
        self,
        token: StateToken | str,
        top_level: bool = True,
        for_state_instance: BaseState | None = None,
    ) -> Any:
        """Read a tab's state (or the missing part of a tree) from Redis, or from memory while it is away."""
        token = self._coerce_token(token)
        assert self.guard is not None
        if self._redis_usable(token.cache_key):
            try:
                return await super().get_state(token, top_level=top_level, for_state_instance=for_state_instance)
            except UNREACHABLE as exc:
                self.guard.trip(exc)
        return self._local_state(token, top_level=top_level, for_state_instance=for_state_instance)

    async def set_state(
        self, token: StateToken | str, state: Any, *, lock_id: bytes | None = None, **context: Any
    ) -> None:
        """Save a state: in Redis while it answers (always, under a Redis lock), else in memory."""
        if lock_id is not None:  # inside StateManagerRedis.modify_state: errors go to our modify_state
            await super().set_state(token, state, lock_id=lock_id, **context)
            return
        token = self._coerce_token(token)
        assert self.guard is not None
        if self._redis_usable(token.cache_key):
            try:
                await super().set_state(token, state, **context)
            except UNREACHABLE as exc:
                self.guard.trip(exc)
            else:
                self._keep(token, state, saved=True)
                return
        self._keep(token, state, saved=False)

    # ---- this worker's copy -------------------------------------------------------------------
    def _local_state(
        self, token: StateToken, top_level: bool = True, for_state_instance: BaseState | None = None
    ) -> Any:
        """The tab's state from the shadow, completed with fresh states (a new tab: all fresh)."""
        parts = self._shadow.get(token.cache_key, {})
        if not isinstance(token, BaseStateToken):
            return parts[""] if parts else token.cls()
        parts = dict(parts)
        if for_state_instance is not None:  # a tree loaded from Redis before it went away: complete it
            parts.update((s.get_full_name(), s) for s in _walk(for_state_instance._get_root_state()))
        flat = _assemble(token.cls.get_root_state(), parts)
        return flat[(token.cls.get_root_state() if top_level else token.cls).get_full_name()]

    def _keep(self, token: StateToken, state: Any, *, saved: bool) -> None:
        """Remember the tab's latest state objects; unsaved ones are written to Redis when it is back.

        `_was_touched` (Reflex's "changed since loaded" flag) is cleared once Redis holds the state, so
        on return what changed during the outage overwrites and the rest only fills in lost keys.
        """
        key = token.cache_key
        self._tokens[key] = token
        self._used[key] = time.monotonic()
        if isinstance(token, BaseStateToken) and isinstance(state, BaseState):
            parts = self._shadow.setdefault(key, {})
            for part in _walk(state._get_root_state()):
                parts[part.get_full_name()] = part
                if saved:
                    part._was_touched = False
        else:
            self._shadow[key] = {"": state}
        if not saved:
            self._restore.add(key)
        self._sweep()

    def forget(self, key: str) -> None:
        """A tab left this worker while Redis holds its state: drop the copy."""
        lock = self._local_locks.get(key)
        if key in self._restore or (lock is not None and lock.locked()):
            return
        self._drop(key)

    def _drop(self, key: str) -> None:
        self._shadow.pop(key, None)
        self._tokens.pop(key, None)
        self._used.pop(key, None)
        self._restore.discard(key)
        lock = self._local_locks.get(key)
        if lock is not None and not lock.locked():
            del self._local_locks[key]

    def _sweep(self) -> None:
        """Drop tabs unused for longer than Reflex's token expiration (what Redis would expire)."""
        now = time.monotonic()
        if now - self._swept < SWEEP_INTERVAL:
            return
        self._swept = now
        for key, used in list(self._used.items()):
            lock = self._local_locks.get(key)
            if now - used > self.token_expiration and not (lock is not None and lock.locked()):
                self._drop(key)
        for key, lock in list(self._local_locks.items()):
            if key not in self._used and not lock.locked():
                del self._local_locks[key]

    # ---- outage and return ----------------------------------------------------------------------
    def _pause(self) -> None:
        """Redis went away: stop the lock listener; every tab shown here is written back on return."""
        self._restore.update(self._shadow)
        if self._lock_task is not None and not self._lock_task.done():
            self._lock_task.cancel()
        self._lock_task = None
        self._lock_updates_subscribed.clear()

    async def _resume(self) -> str:
        """Redis is back (maybe a fresh server): notifications anew, then write back every pending tab."""
        assert self.guard is not None
        self._redis_notify_keyspace_events_enabled = False
        written = 0
        for key in list(self._restore):
            if not self.guard.up:
                break
            token = self._tokens.get(key)
            async with self._lock_for(token.lock_key if token is not None else key):
                if key in self._restore and await self._write_back(key):
                    written += 1
        return f"{written} tab states written back"

    async def _write_back(self, key: str) -> bool:
        """Write a tab's shadow to Redis (call with the tab's local lock held); False if Redis failed."""
        assert self.guard is not None
        token, parts = self._tokens.get(key), self._shadow.get(key)
        if token is None or not parts:
            self._restore.discard(key)
            return True
        pipeline = self.redis.pipeline(transaction=False)
        if isinstance(token, BaseStateToken):
            for part in parts.values():
                if payload := part._serialize():
                    # Changed during the outage: ours is newer. Unchanged: only fill in what Redis lost.
                    nx = not part._was_touched
                    pipeline.set(token._state_key(type(part)), payload, ex=self.token_expiration, nx=nx)
        else:
            pipeline.set(str(token), token.serialize(parts[""]), ex=self.token_expiration)
        try:
            await pipeline.execute()
        except UNREACHABLE as exc:
            self.guard.trip(exc)
            return False
        self._restore.discard(key)
        if isinstance(token, BaseStateToken):
            for part in parts.values():
                part._was_touched = False
        if self.connected is not None and not self.connected(token.lock_key):
            self._drop(key)  # kept only for the outage; Redis has it now
        return True

    async def _subscribe_lock_updates(self) -> None:
        """Reflex's lock listener; a lost connection trips the guard instead of logging errors."""
        assert self.guard is not None
        await self.guard.wait_up()
        try:
            await super()._subscribe_lock_updates()
        except UNREACHABLE as exc:
            self.guard.trip(exc)
            await self.guard.wait_up()

    async def close(self) -> None:
        """Close Reflex's manager, then the guard."""
        try:
            await super().close()
        finally:
            assert self.guard is not None
            await self.guard.close()
