"""Reflex's own Redis use, made to ride out Redis going away (issue #4).

With REDIS_URL set, Reflex keeps every tab's state in Redis (`StateManagerRedis`) and routes updates
between workers through it (`RedisTokenManager`). Both assume Redis is always there: when it is not,
every event fails. `install(app)` swaps in subclasses of those two classes that share one breaker
(`RedisGuard`):

* While Redis answers they *are* Reflex's classes: every call goes to `super()`. The state manager
  also keeps, per worker, a reference to the latest state objects of each tab it served (its
  "shadow": the objects Reflex loaded and saved anyway, no extra Redis traffic).
* The first connection error trips the breaker (one warning). From then on nothing waits for Redis:
  a tab's events run on the state in this worker's memory (the shadow, or a fresh state that Reflex
  rehydrates, as for a new tab), like `StateManagerMemory`; socket links are local, like
  `LocalTokenManager`. A tab's websocket stays on one worker, so that state is the right one for it.
* Every `RETRY_AFTER` seconds one PING probes Redis. When it answers, the states changed meanwhile
  are written back (parts changed during the outage overwrite, the rest only fills in what Redis
  lost: SET NX), the socket records of the tabs connected here are stored again, pub/sub listeners
  restart, and Redis is used again (one warning) — without a restart.
"""

from __future__ import annotations

from typing import Any

from reflex.istate.manager.redis import StateManagerRedis
from reflex.utils import prerequisites

from rubin_app.state.resilient.guard import RETRY_AFTER, RedisGuard, make_client
from rubin_app.state.resilient.state_manager import ResilientStateManager
from rubin_app.state.resilient.token_manager import ResilientTokenManager

__all__ = ["RedisGuard", "ResilientStateManager", "ResilientTokenManager", "install"]


def install(
    app: Any,
    connect_timeout: float = 0.5,
    retry_after: float = RETRY_AFTER,
    manager_cls: type[ResilientStateManager] = ResilientStateManager,
) -> bool:
    """Replace the app's Redis state and token managers by the resilient ones (before the server starts).

    Returns False (and changes nothing) when Reflex does not keep its state in Redis.
    """
    current = app._state_manager
    if isinstance(current, ResilientStateManager):
        return True
    if not isinstance(current, StateManagerRedis):
        return False
    url = prerequisites.parse_redis_url()
    if url is None:
        return False
    # Reflex's own clients were created but never connected: nothing to close.
    guard = RedisGuard(make_client(url, connect_timeout), retry_after=retry_after)
    manager = manager_cls(
        redis=make_client(url, connect_timeout, guard),
        token_expiration=current.token_expiration,
        lock_expiration=current.lock_expiration,
        lock_warning_threshold=current.lock_warning_threshold,
        guard=guard,
    )
    app._state_manager = manager
    namespace = app.event_namespace
    if namespace is not None:
        tokens = ResilientTokenManager(make_client(url, connect_timeout, guard), guard, forget=manager.forget)
        namespace._token_manager = tokens
        manager.connected = tokens._owned
    return True
