"""Where tab states live: signed-out tabs only briefly, an ended session's tabs not at all.

Tab state keys come from `state/socket.py:tab_key`: they end in `-anon` for a signed-out tab and in 16 hex
digits of the session token's hash otherwise. Both state managers here use that:

* `TabStateDisk` (one worker, no Redis): a signed-out tab's state is kept in memory only, never written
  to `.states/`, and dropped after ANONYMOUS_STATE_MINUTES idle (or when too many pile up); the states
  folder is private to the app's user (0700).
* `TabStateRedis` (several workers): the same, with Redis expiring a signed-out tab's keys after
  ANONYMOUS_STATE_MINUTES instead of Reflex's hour.
* `purge_sessions(hashes)` deletes every state of the given sessions (memory, disk, Redis): sign-out,
  revocation and account deletion call it through `services.sessions.ended_hooks`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from reflex.istate.manager.disk import StateManagerDisk
from reflex.istate.manager.token import BaseStateToken, StateToken
from reflex.state import BaseState, State

from rubin_app.state.resilient.guard import UNREACHABLE
from rubin_app.state.resilient.state_manager import ResilientStateManager
from rubin_app.state.socket import is_anonymous, session_tail

log = logging.getLogger(__name__)
MAX_ANONYMOUS = 5_000  # signed-out tab states one worker keeps at most (oldest dropped first)
SWEEP_EVERY = 15.0


def state_classes(root: type[BaseState] = State) -> Iterator[type[BaseState]]:
    """Every state class of the app's tree."""
    stack = [root]
    while stack:
        cls = stack.pop()
        yield cls
        stack.extend(cls.get_substates())


class TabStateDisk(StateManagerDisk):
    """Reflex's disk state manager that keeps signed-out tabs in memory only, briefly."""

    anonymous_seconds: float = 600.0
    _anon_swept: float = 0.0

    def __post_init__(self) -> None:
        """Create the states folder private to this user."""
        super().__post_init__()
        with contextlib.suppress(OSError):
            os.chmod(self.states_directory, 0o700)

    async def set_state_for_substate(self, token: StateToken, substate: Any) -> None:
        """Write to disk, except a signed-out tab's state (memory only)."""
        if is_anonymous(token.ident):
            return
        await super().set_state_for_substate(token, substate)

    async def set_state(self, token: StateToken, state: Any, **context: Any) -> None:
        """Reflex's save, then drop signed-out tabs idle too long."""
        await super().set_state(token, state, **context)
        self._sweep_anonymous()

    def _sweep_anonymous(self) -> None:
        now = time.time()
        anon = [(t, tok) for key, (t, tok) in self._token_last_touched.items() if is_anonymous(key)]
        if now - self._anon_swept < SWEEP_EVERY and len(anon) <= MAX_ANONYMOUS:
            return
        self._anon_swept = now
        anon.sort(key=lambda item: item[0])
        excess = len(anon) - MAX_ANONYMOUS
        for i, (touched, tok) in enumerate(anon):
            if (i < excess or now - touched > self.anonymous_seconds) and not self._is_locked(tok):
                self._purge_token(tok)

    def anonymous_count(self) -> int:
        """Signed-out tab states held in memory."""
        return sum(1 for key in self.states if is_anonymous(key))

    async def purge_sessions(self, token_hashes: list[str]) -> int:
        """Forget and delete the states of the given sessions' tabs; returns how many tabs."""
        tails = tuple(session_tail(h) for h in token_hashes)
        keys = [k for k in list(self._token_last_touched) if k.endswith(tails)]
        # A tab whose event is running now (the sign-out or deletion itself) is left to the second pass.
        keys = [k for k in keys if not self._is_locked(self._token_last_touched[k][1])]
        for key in keys:
            _, token = self._token_last_touched[key]
            self._purge_token(token)
            for item in [t for t in self._write_queue if t.cache_key == key]:
                self._write_queue.pop(item, None)
            for cls in state_classes():
                with contextlib.suppress(OSError):
                    self.token_path(BaseStateToken(ident=key, cls=cls)).unlink()
        return len(keys)


class TabStateRedis(ResilientStateManager):
    """The resilient Redis state manager, with signed-out tabs expiring in minutes and session purges."""

    anonymous_seconds: float = 600.0

    @contextlib.asynccontextmanager
    async def modify_state(self, token: StateToken | str, **context: Any) -> AsyncIterator[Any]:
        """Reflex's modify; a signed-out tab's keys then expire soon."""
        token = self._coerce_token(token)
        async with super().modify_state(token, **context) as state:
            yield state
        if is_anonymous(token.ident):
            await self._expire_soon(token.ident)

    async def set_state(
        self, token: StateToken | str, state: Any, *, lock_id: bytes | None = None, **context: Any
    ) -> None:
        """Reflex's save; a signed-out tab's keys then expire soon — also after a fenced save under a lock
        (`lock_id`: Reflex's lease breaker flushes a cached state that way after the event, with its hour TTL)."""
        await super().set_state(token, state, lock_id=lock_id, **context)
        token = self._coerce_token(token)
        if is_anonymous(token.ident):
            await self._expire_soon(token.ident)

    async def _expire_soon(self, ident: str) -> None:
        assert self.guard is not None
        if not self.guard.up:
            return
        try:
            pipeline = self.redis.pipeline(transaction=False)
            for cls in state_classes():
                pipeline.expire(str(BaseStateToken(ident=ident, cls=cls)), int(self.anonymous_seconds))
            await pipeline.execute()
        except UNREACHABLE as exc:
            self.guard.trip(exc)

    async def purge_sessions(self, token_hashes: list[str]) -> int:
        """Delete the states of the given sessions' tabs from Redis and this worker's memory."""
        tails = [session_tail(h) for h in token_hashes]
        idents: set[str] = {k for k in list(self._used) if any(k.endswith(t) for t in tails)}
        for key in idents:
            self.forget(key)  # this worker's copy (kept while one of its events runs: the second pass)
        assert self.guard is not None
        if self.guard.up:
            try:
                for tail in tails:
                    keys = [k.decode() if isinstance(k, bytes) else k
                            async for k in self.redis.scan_iter(match=f"t*{tail}_*", count=500)]  # fmt: skip
                    busy = {k.partition("_")[0] for k in keys if k.endswith("_lock")}  # an event runs on it now
                    gone = [k for k in keys if k.partition("_")[0] not in busy]
                    idents.update(k.partition("_")[0] for k in gone)
                    if gone:
                        await self.redis.delete(*gone)
            except UNREACHABLE as exc:
                self.guard.trip(exc)
        return len(idents)
