"""Which requests the response cache answers: deterministic ones (temperature 0) and those of models an admin
marked cacheable (re-read from the database every few seconds), keyed by the whole canonical request and the
asking user (unless CACHE_SHARED)."""

from __future__ import annotations

import time

from rubin_app.config import Settings
from rubin_app.llm.types import ChatRequest
from rubin_app.services import model_settings
from rubin_app.services.cache import CachedAnswer, ResponseCache
from rubin_app.services.db import session_scope

CACHEABLE_TTL = 10.0


class CachePolicy:
    """Decides and looks up cache answers for requests."""

    def __init__(self, settings: Settings, cache: ResponseCache) -> None:
        self.settings = settings
        self.cache = cache
        self._cacheable_at = 0.0

    async def refresh_cacheable(self, *, force: bool = False) -> set[str]:
        """The models cached at any temperature (admin switches), re-read from the database every 10 s."""
        if force or time.monotonic() - self._cacheable_at > CACHEABLE_TTL:
            async with session_scope(read_only=True) as session:
                self.cache.cacheable_models = await model_settings.cacheable_models(
                    session=session, settings=self.settings
                )
            self._cacheable_at = time.monotonic()
        return self.cache.cacheable_models

    async def lookup(self, request: ChatRequest, user_id: int) -> tuple[str | None, CachedAnswer | None]:
        """(cache key, cached answer) for a user's request: (None, None) when the request is not cacheable."""
        if self.cache.store is not None:
            await self.refresh_cacheable()
        if not self.cache.applies(request.model, request.params.temperature):
            return None, None
        key = request.cache_key(scope="" if self.settings.cache_shared else f"user:{user_id}")
        return key, await self.cache.get(key)
