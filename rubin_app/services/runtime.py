"""Process-wide objects (HTTP client, model list, generation manager), built lazily from settings."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from datetime import timedelta
from functools import cached_property
from typing import Any

from redis.asyncio import Redis

from rubin_app.accounts.key_cache import KeyResolver
from rubin_app.accounts.permission_cache import PermissionCache
from rubin_app.config import Settings, get_settings
from rubin_app.connections.router import ModelRouter
from rubin_app.core import tls
from rubin_app.generation.manager import GenerationManager
from rubin_app.generation.sinks import AfterRun, AnswerWriter, CacheWriter, FinalSaveHook, SaveSettings, Sink
from rubin_app.generation.webhook_sink import queue_message_event
from rubin_app.knowledge.index import close_indexes
from rubin_app.knowledge.jobs import IngestionJob
from rubin_app.llm.client import LLMClient, LLMError
from rubin_app.llm.types import Params
from rubin_app.models.user import utcnow
from rubin_app.observability.metrics import AnswerMetrics
from rubin_app.services import sessions
from rubin_app.services.admission import Admission
from rubin_app.services.bus import Bus
from rubin_app.services.cache import ResponseCache
from rubin_app.services.cache_policy import CachePolicy
from rubin_app.services.catalog import ModelCatalog
from rubin_app.services.db import session_scope
from rubin_app.services.limits import Limiter
from rubin_app.services.oauth import Providers
from rubin_app.services.recovery import Recovery
from rubin_app.services.redis_store import RedisStore
from rubin_app.services.relay import Relay
from rubin_app.services.retention_job import RetentionJob
from rubin_app.services.sessions import Principal, PrincipalCache
from rubin_app.usage.recorder import UsageRecorder
from rubin_app.vault.service import get_vault
from rubin_app.webhooks.delivery import WebhookDispatcher

log = logging.getLogger(__name__)
STOP = "stop_answer"  # bus message: stop this user's answer wherever it runs
CHAT_CHANGED = "chat_changed"  # bus message: an answer started in this user's conversation (open tabs follow it)
HEALTH_TTL = 5
CACHEABLE_TTL = 10.0
LIMITS_TTL = 10.0
TOUCH_EVERY = timedelta(minutes=1)  # how often a session's last use is written (idle timeout)
RELAY_INTERVAL = 0.25  # how often a live answer is published for tabs on other workers (a reload, a phone)


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
            verify=tls.localai_verify(settings),
        )
        self.redis = RedisStore(tls.redis_url(settings), timeout=settings.redis_timeout) if settings.redis_url else None
        self.catalog = ModelCatalog(self.client, settings.models_cache_ttl, self.redis)  # LOCALAI_URL's own list
        self.bus = Bus(self.redis)
        # Every connection's models in one list (LOCALAI_URL's first), and which client serves which model.
        self.router = ModelRouter(settings, self.client, self.catalog, self.redis, session_scope, self.bus)
        self.limiter = Limiter(self.redis)
        self.admission = Admission(settings, self.limiter)
        vault = get_vault(settings)
        redis_cipher = vault.redis if vault.enabled else None  # Redis keeps no answer text in clear
        self.cache = ResponseCache(
            self.redis, ttl=settings.cache_ttl, max_bytes=settings.cache_max_bytes,
            cacheable_models=set(settings.cache_models), cipher=redis_cipher,
        )  # fmt: skip
        self.cache_policy = CachePolicy(settings, self.cache)
        self.relay = Relay(self.redis, interval=RELAY_INTERVAL, cipher=redis_cipher)
        self.generation = GenerationManager(self.client, client_for=self.router.client_for)
        self.generation.continue_partial = settings.resume_answers == "continue"
        self.save_settings = SaveSettings(flush_seconds=settings.db_flush_seconds)
        # Run inside an answer's final save: the webhook outbox (message.completed / message.failed).
        self.final_save_hooks: list[FinalSaveHook] = [queue_message_event]
        self.bus.on(STOP, self._on_stop)
        self.keys = KeyResolver(session_scope, self.bus)
        self.permissions = PermissionCache(session_scope, self.bus)  # groups: models and features per user
        self.permissions.listeners.append(self.keys.forget_all)
        self.usage = UsageRecorder(session_scope)
        # Told of every ended run, stored or not, after the quota settlement: usage accounting, then more.
        self.after_run: list[Sink] = [self.usage, AnswerMetrics()]  # + Prometheus figures (GET /metrics)
        self.generation.token_budget = self.admission.budget  # an answer is held to its reservations

        self.principals = PrincipalCache()
        self.retention = RetentionJob(settings, self.redis, session_scope)  # old chats, audit, usage (one worker)
        self.recovery = Recovery(self)  # answers left unfinished by a worker that died or stopped
        # Documents to knowledge bases (every worker); its parts (the embedder, the search index) serve the chat too.
        self.knowledge = IngestionJob(settings, session_scope, client_for=self.router.client_for)
        self._touches: set[asyncio.Task[Any]] = set()  # small off-path writes and messages

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
        return await self.principal_by_hash(sessions.hash_token(token)) if token else None

    async def principal_by_hash(self, token_hash: str | None) -> Principal | None:
        """Who the session with this token hash belongs to (a tab's state keeps only the hash)."""
        if not token_hash:
            return None
        hit, principal = self.principals.get_hash(token_hash)
        if hit:
            return principal
        idle = timedelta(minutes=self.settings.session_idle_minutes) if self.settings.session_idle_minutes else None
        async with session_scope(read_only=True) as session:
            principal = await sessions.resolve_hash(session=session, token_hash=token_hash, idle=idle)
        self.principals.put_hash(token_hash, principal)
        stale = principal is not None and (principal.seen_at is None or utcnow() - principal.seen_at > TOUCH_EVERY)
        if stale and principal is not None:  # last use: the idle timeout and the account page's sessions
            task = asyncio.create_task(self._touch(principal.session_id))  # off the event's path
            self._touches.add(task)
            task.add_done_callback(self._touches.discard)
        return principal

    async def _touch(self, session_id: int) -> None:
        """Record a session's use (at most once a minute per session: SESSION_IDLE_MINUTES, the sessions list)."""
        try:
            async with session_scope() as session:
                await sessions.touch(session=session, session_id=session_id)
        except Exception:
            log.warning("could not record a session's last use", exc_info=True)

    async def localai_health(self) -> dict[str, object]:
        """Whether LocalAI answers, cached a few seconds (in Redis when there is one) so probes stay cheap."""
        store = self.redis

        async def cached(client: Redis) -> dict[str, object] | None:
            raw = await client.get(store.key("health", "localai")) if store else None
            return json.loads(raw) if raw else None

        if store is not None and (hit := await store.run(cached, lambda: None)) is not None:
            return hit
        try:
            models = await self.client.list_models()
            result: dict[str, object] = {"ok": True, "models": len(models)}
        except LLMError as exc:
            result = {"ok": False, "error": exc.code}
        if store is not None:

            async def share(client: Redis) -> None:
                await client.set(store.key("health", "localai"), json.dumps(result), ex=HEALTH_TTL)

            await store.run(share, lambda: None)
        return result

    async def redis_health(self) -> dict[str, object]:
        """Redis as health reports it: not configured, up, or away (with the fallbacks in use)."""
        if self.redis is None:
            return {"configured": False}
        ok = await self.redis.ping()
        return {"configured": True, "ok": ok, **({} if ok else {"error": self.redis.last_error or "unreachable"})}

    async def stop_answer(self, *, user_id: int, message_id: int) -> bool:
        """Stop the user's answer wherever it runs: here, or on another worker (through the bus).

        True when it was stopped here or the request reached the other workers (the one that runs it stops it
        and saves it as interrupted; followers see it end)."""
        if await self.generation.stop(user_id=user_id, message_id=message_id):
            return True
        if self.redis is None:
            return False  # one worker: nobody else can be running it
        await self.recovery.note_stop(message_id)  # its worker may have died: whoever takes it over ends it
        return await self.bus.publish(STOP, user_id=user_id, message_id=message_id) > 0

    def chat_changed(self, *, user_id: int, conversation_id: str) -> None:
        """Tell every worker that an answer started in this conversation (tabs showing it follow it); off the
        answer's path (a task of its own)."""
        task = asyncio.get_running_loop().create_task(
            self.bus.publish(CHAT_CHANGED, user_id=user_id, conversation_id=conversation_id)
        )
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)

    async def _on_stop(self, message: dict[str, object]) -> None:
        user_id, message_id = message.get("user_id"), message.get("message_id")
        if isinstance(user_id, int) and isinstance(message_id, int):
            run = self.generation.get(user_id=user_id, message_id=message_id)
            if run is not None:
                await self.generation.stop_run(run, wait=False)

    @cached_property
    def webhooks(self) -> WebhookDispatcher:
        """The webhook delivery loop of this worker (each worker runs one; the outbox leases keep them apart)."""
        return WebhookDispatcher(self.settings, secret_key=self.secret_key)

    async def start(self) -> None:
        """Start this worker's background parts: the worker bus, the model connections, webhook delivery, the
        retention job, the recovery of unfinished answers (its first scan resumes what a previous process left)."""
        await self.bus.ensure_listening()
        await self.router.load()  # the model connections, before anything routes a model
        self.webhooks.start()
        self.retention.start()
        self.knowledge.start()
        self.recovery.start()

    async def close(self) -> None:
        """Hand unfinished answers over (saved as they are), flush the relay and usage, stop webhook delivery,
        close Redis."""
        await self.recovery.stop()
        await self.recovery.hand_over()
        await self.retention.stop()
        await self.knowledge.stop()
        await close_indexes()  # the knowledge index's own connections (SQLite threads, PostgreSQL pool)
        if "webhooks" in self.__dict__:
            await self.webhooks.stop()
        await self.relay.close()
        await self.router.aclose()
        await self.usage.close()
        await self.bus.close()
        if self.redis is not None:
            await self.redis.close()

    @property
    def embedder(self) -> Any:
        """The embedder of knowledge and memory (None when embeddings are switched off)."""
        return self.knowledge.parts.embedder

    @property
    def knowledge_index(self) -> Any:
        """The knowledge search index of this database."""
        return self.knowledge.parts.index

    def chat_params(self) -> Params:
        """The parameters of the chat UI's requests (from settings)."""
        return Params(max_tokens=self.settings.llm_max_tokens or None, temperature=self.settings.llm_temperature)

    def answer_writer(self, *, committed: bool = True) -> AnswerWriter:
        """The sink that saves an answer into its message row."""
        return AnswerWriter(session_scope, self.save_settings, committed=committed, final_hooks=self.final_save_hooks)

    def sinks(self, writer: AnswerWriter | None) -> list[Sink]:
        """What every run is told, in order: its row (if stored), the cache, the quota, then the rest."""
        return [
            *([writer] if writer else []),
            CacheWriter(self.cache),
            AfterRun(self.admission.settle),
            *self.after_run,
        ]


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's runtime, created on first use (never at import)."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(get_settings())
    return _runtime
