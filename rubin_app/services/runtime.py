"""Process-wide objects (HTTP client, model list, generation manager), built lazily from settings."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from functools import cached_property

from rubin_app.config import Settings, get_settings
from rubin_app.services import chats, sessions
from rubin_app.services.db import session_scope
from rubin_app.services.generation import GenerationManager, GenerationSettings
from rubin_app.services.llm import LLMClient, LLMError
from rubin_app.services.oauth import Providers
from rubin_app.services.sessions import Principal, PrincipalCache

log = logging.getLogger(__name__)


@dataclass
class ModelCatalog:
    """The model list of the server, cached for `ttl` seconds."""

    client: LLMClient
    ttl: float
    models: list[str] = field(default_factory=list)
    fetched_at: float = 0.0
    error: LLMError | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, *, refresh: bool = False) -> list[str]:
        """Cached model ids; on failure the last good list stays and `error` is set."""
        async with self._lock:
            fresh = self.models and time.monotonic() - self.fetched_at < self.ttl
            if fresh and not refresh:
                return self.models
            try:
                self.models = await self.client.list_models()
                self.error = None
                self.fetched_at = time.monotonic()
            except LLMError as exc:
                self.error = exc
                log.warning("model list unavailable: %s", exc.code)
            return self.models


class Runtime:
    """Everything that lives as long as the backend process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        key = settings.localai_api_key.get_secret_value() if settings.localai_api_key else None
        self.client = LLMClient(
            settings.llm_base_url,
            api_key=key,
            connect_timeout=settings.llm_connect_timeout,
            read_timeout=settings.llm_read_timeout,
            retries=settings.llm_retries,
            backoff=settings.llm_retry_backoff,
        )
        self.catalog = ModelCatalog(self.client, settings.models_cache_ttl)
        self.generation = GenerationManager(
            self.client,
            session_scope,
            GenerationSettings(
                flush_seconds=settings.db_flush_seconds,
                max_tokens=settings.llm_max_tokens or None,
                temperature=settings.llm_temperature,
            ),
        )

        self.principals = PrincipalCache()

    @cached_property
    def providers(self) -> Providers:
        """The sign-in providers, registered with authlib on first use."""
        return Providers(self.settings)

    @cached_property
    def secret_key(self) -> str:
        """SECRET_KEY, or a random key generated once into DATA_DIR (mode 0600) and reused after restarts."""
        if self.settings.secret_key is not None:
            return self.settings.secret_key.get_secret_value()
        path = self.settings.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path.read_text().strip()

    async def principal(self, token: str | None) -> Principal | None:
        """Who a session token belongs to (None: no live session); cached for a second or two."""
        if not token:
            return None
        hit, principal = self.principals.get(token)
        if hit:
            return principal
        async with session_scope() as session:
            principal = await sessions.resolve(session=session, token=token)
        self.principals.put(token, principal)
        return principal

    async def reap_orphans(self, older_than: float | None = None) -> int:
        """Mark answers whose process died as interrupted."""
        async with session_scope() as session:
            count = await chats.interrupt_orphaned_answers(
                session=session, exclude=self.generation.active_ids(), older_than=older_than
            )
        if count:
            log.info("marked %d orphaned answers as interrupted", count)
        return count


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's runtime, created on first use (never at import)."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(get_settings())
    return _runtime
