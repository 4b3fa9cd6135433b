"""The model list of the server, cached (and shared by the workers through Redis), never queued behind LocalAI."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from rubin_app.accounts.permissions import Permissions
from rubin_app.llm.client import LLMClient, LLMError
from rubin_app.services.redis_store import RedisStore

log = logging.getLogger(__name__)


@dataclass
class ModelCatalog:
    """The model list of the server, cached for `ttl` seconds (in Redis too, shared by the workers).

    Callers never queue behind the network: one fetch at a time is in flight (single-flight, bounded by
    `timeout`) and every caller that needs it waits on that same fetch. A caller that already has a list
    to show (a stale one, or the empty list of a failed fetch with its `error`) waits at most `stale_wait`
    and then gets what is known while the fetch finishes in the background; a caller with nothing
    (the first fill) or asking for `refresh` waits for the fetch, at most `timeout`.
    """

    client: LLMClient
    ttl: float
    store: RedisStore | None = None
    models: list[str] = field(default_factory=list)
    fetched_at: float = 0.0
    error: LLMError | None = None
    timeout: float = 5.0  # longest a fetch of the list may take (LocalAI accepted but does not answer)
    stale_wait: float = 0.1  # how long a caller with a list to show waits for a fresher one
    _inflight: asyncio.Task[None] | None = field(default=None, repr=False)
    _force: bool = field(default=False, repr=False)  # a caller wants LocalAI's list, not the shared copy
    key: str = "models"  # the shared copy's Redis key (one per connection: "models:<connection id>")

    async def get(self, *, refresh: bool = False) -> list[str]:
        """Cached model ids; on failure the last good list stays and `error` is set."""
        if not refresh and self.models and time.monotonic() - self.fetched_at < self.ttl:
            return self.models
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.get_running_loop().create_task(self._fetch(refresh), name="rubin-model-list")
            self._inflight = task
        elif refresh:
            self._force = True  # the fetch under way skips the shared copy if it has not read it yet
        known = bool(self.models) or self.error is not None
        # The fetch ends within `timeout` (plus a Redis read): the margin lets a waiting caller see its outcome.
        # asyncio.wait neither cancels the shared fetch on timeout nor when this caller is cancelled.
        await asyncio.wait({task}, timeout=self.timeout + 1.0 if refresh or not known else self.stale_wait)
        return self.models

    async def allowed(self, permissions: Permissions, *, refresh: bool = False) -> list[str]:
        """The cached model ids a user with `permissions` may use (what the picker and /v1/models show)."""
        return permissions.filter(await self.get(refresh=refresh))

    async def _fetch(self, refresh: bool) -> None:
        """One fetch: the workers' shared copy (unless refreshing), else LocalAI's list."""
        self._force = self._force or refresh
        try:
            shared = None if self._force else await self._shared()
            if shared and not self._force:  # (a refresh asked while Redis was read wants LocalAI's list)
                self.models, self.fetched_at, self.error = shared, time.monotonic(), None
                return
            self._force = False
            try:
                models = await asyncio.wait_for(self.client.list_models(), self.timeout)
            except TimeoutError:
                raise LLMError("timeout", "GET /v1/models did not answer in time") from None
            self.models, self.fetched_at, self.error = models, time.monotonic(), None
            await self._share(models)
        except LLMError as exc:
            self.error = exc
            log.warning("model list unavailable: %s", exc.code)
        except RedisError:
            pass  # Redis refused a command (logged by the store): the list is kept in this worker only
        except Exception:
            log.exception("fetching the model list failed")

    async def _shared(self) -> list[str] | None:
        store = self.store
        if store is None or self.ttl <= 0:
            return None

        async def action(client: Redis) -> list[str] | None:
            raw = await client.get(store.key(self.key))
            return json.loads(raw) if raw else None

        try:
            return await store.run(action, lambda: None)
        except RedisError:  # logged by the store; LocalAI is asked instead
            return None

    async def _share(self, models: list[str]) -> None:
        store = self.store
        if store is None or self.ttl <= 0 or not models:
            return

        async def action(client: Redis) -> None:
            await client.set(store.key(self.key), json.dumps(models), ex=max(1, int(self.ttl)))

        await store.run(action, lambda: None)
