"""Process-wide objects (HTTP client, model list, generation manager), built lazily from settings."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from redis.exceptions import RedisError

from rubin_app.accounts.key_cache import KeyResolver
from rubin_app.config import Settings, get_settings
from rubin_app.generation.manager import GenerationManager
from rubin_app.generation.run import Run
from rubin_app.generation.sinks import AfterRun, AnswerWriter, CacheWriter, FinalSaveHook, SaveSettings, Sink
from rubin_app.generation.webhook_sink import queue_message_event
from rubin_app.llm.client import LLMClient, LLMError
from rubin_app.llm.types import ChatRequest, Params
from rubin_app.models import MessageStatus
from rubin_app.models.user import utcnow
from rubin_app.services import chats, limits, model_settings, sessions
from rubin_app.services.bus import Bus
from rubin_app.services.cache import CachedAnswer, ResponseCache
from rubin_app.services.db import session_scope
from rubin_app.services.limits import DEFAULT_ANSWER_TOKENS, Limiter, LimitExceeded, Limits
from rubin_app.services.oauth import Providers
from rubin_app.services.redis_store import RedisStore
from rubin_app.services.relay import Relay
from rubin_app.services.sessions import Principal, PrincipalCache
from rubin_app.usage.recorder import UsageRecorder
from rubin_app.webhooks.delivery import WebhookDispatcher

log = logging.getLogger(__name__)
STOP = "stop_answer"  # bus message: stop this user's answer wherever it runs
HEALTH_TTL = 5
CACHEABLE_TTL = 10.0
LIMITS_TTL = 10.0
TOUCH_EVERY = timedelta(minutes=1)  # how often a session's last use is written (idle timeout)
RELAY_INTERVAL = 0.25  # how often a live answer is published for tabs on other workers (a reload, a phone)


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

        async def action(client) -> list[str] | None:
            raw = await client.get(store.key("models"))
            return json.loads(raw) if raw else None

        try:
            return await store.run(action, lambda: None)
        except RedisError:  # logged by the store; LocalAI is asked instead
            return None

    async def _share(self, models: list[str]) -> None:
        store = self.store
        if store is None or self.ttl <= 0 or not models:
            return

        async def action(client) -> None:
            await client.set(store.key("models"), json.dumps(models), ex=max(1, int(self.ttl)))

        await store.run(action, lambda: None)


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
        self.redis = RedisStore(settings.redis_url, timeout=settings.redis_timeout) if settings.redis_url else None
        self.catalog = ModelCatalog(self.client, settings.models_cache_ttl, self.redis)
        self.limiter = Limiter(self.redis)
        self.cache = ResponseCache(
            self.redis, ttl=settings.cache_ttl, max_bytes=settings.cache_max_bytes,
            cacheable_models=set(settings.cache_models),
        )  # fmt: skip
        self.relay = Relay(self.redis, interval=RELAY_INTERVAL)
        self.generation = GenerationManager(self.client)
        self.save_settings = SaveSettings(flush_seconds=settings.db_flush_seconds)
        # Run inside an answer's final save: the webhook outbox (message.completed / message.failed).
        self.final_save_hooks: list[FinalSaveHook] = [queue_message_event]
        self.bus = Bus(self.redis)
        self.bus.on(STOP, self._on_stop)
        self.keys = KeyResolver(session_scope, self.bus)
        self.usage = UsageRecorder(session_scope)
        # Told of every ended run, stored or not, after the quota settlement: usage accounting, then more.
        self.after_run: list[Sink] = [self.usage]
        self.generation.token_budget = lambda run: self.limiter.reserved(run.slot)
        self._cacheable_at = 0.0
        self._limits: dict[int, tuple[float, Limits]] = {}

        self.principals = PrincipalCache()
        self._touches: set[asyncio.Task] = set()

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
        if idle is not None and stale and principal is not None:  # last use is only kept for the idle timeout
            task = asyncio.create_task(self._touch(principal.session_id))  # off the event's path
            self._touches.add(task)
            task.add_done_callback(self._touches.discard)
        return principal

    async def _touch(self, session_id: int) -> None:
        """Record a session's use (at most once a minute per session, for SESSION_IDLE_MINUTES)."""
        try:
            async with session_scope() as session:
                await sessions.touch(session=session, session_id=session_id)
        except Exception:
            log.warning("could not record a session's last use", exc_info=True)

    async def localai_health(self) -> dict[str, object]:
        """Whether LocalAI answers, cached a few seconds (in Redis when there is one) so probes stay cheap."""
        store = self.redis

        async def cached(client) -> dict[str, object] | None:
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

            async def share(client) -> None:
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
        return await self.bus.publish(STOP, user_id=user_id, message_id=message_id) > 0

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
        """Start this worker's background parts: the worker bus, webhook delivery."""
        await self.bus.ensure_listening()
        self.webhooks.start()

    async def close(self) -> None:
        """Stop answers (saving them), flush the relay and usage, stop webhook delivery, close Redis."""
        await self.generation.shutdown()
        if "webhooks" in self.__dict__:
            await self.webhooks.stop()
        await self.relay.close()
        await self.usage.close()
        await self.bus.close()
        if self.redis is not None:
            await self.redis.close()

    async def limits_for(self, user_id: int) -> Limits:
        """The user's limits (defaults from settings, per-user overrides from the database, re-read every 10 s)."""
        cached = self._limits.get(user_id)
        if cached is not None and time.monotonic() - cached[0] < LIMITS_TTL:
            return cached[1]
        async with session_scope(read_only=True) as session:
            found = await limits.get_limits(session=session, settings=self.settings, user_id=user_id)
        if len(self._limits) > 10_000:
            self._limits.clear()
        self._limits[user_id] = (time.monotonic(), found)
        return found

    def forget_limits(self, user_id: int) -> None:
        """An admin changed the user's limits: use the new ones at once in this worker."""
        self._limits.pop(user_id, None)

    @property
    def answer_reservation(self) -> int:
        """Tokens an answer reserves of a daily quota: its longest context plus its longest answer."""
        return self.settings.context_token_budget + (self.settings.llm_max_tokens or DEFAULT_ANSWER_TOKENS)

    async def admit(self, user_id: int, ip: str = "") -> str | None:
        """Check a new chat request against the user's limits, reserve its tokens and take an answer slot;
        LimitExceeded if over. The slot id is also the ticket of the reservation (settled by `_account`)."""
        await self.bus.ensure_listening()  # this worker hears Stop for the answer it is about to run
        user_limits = await self.limits_for(user_id)
        ticket = await self.limiter.check_request(
            user_id=user_id, ip=ip, limits=user_limits, estimate=self.answer_reservation
        )
        slot = await self.limiter.acquire(user_id, user_limits.concurrent, slot=ticket)
        if slot is None:
            await self.limiter.release(user_id, ticket)
            raise LimitExceeded("concurrency", user_limits.concurrent, 5)
        return slot

    async def refresh_cacheable(self, *, force: bool = False) -> set[str]:
        """The models cached at any temperature (admin switches), re-read from the database every 10 s."""
        if force or time.monotonic() - self._cacheable_at > CACHEABLE_TTL:
            async with session_scope(read_only=True) as session:
                self.cache.cacheable_models = await model_settings.cacheable_models(
                    session=session, settings=self.settings
                )
            self._cacheable_at = time.monotonic()
        return self.cache.cacheable_models

    def chat_params(self) -> Params:
        """The parameters of the chat UI's requests (from settings)."""
        return Params(max_tokens=self.settings.llm_max_tokens or None, temperature=self.settings.llm_temperature)

    async def cached_answer(self, request: ChatRequest, user_id: int) -> tuple[str | None, CachedAnswer | None]:
        """(cache key, cached answer) for a user's request: (None, None) when the request is not cacheable."""
        if self.cache.store is not None:
            await self.refresh_cacheable()
        if not self.cache.applies(request.model, request.params.temperature):
            return None, None
        key = request.cache_key(scope="" if self.settings.cache_shared else f"user:{user_id}")
        return key, await self.cache.get(key)

    def answer_writer(self, *, committed: bool = True) -> AnswerWriter:
        """The sink that saves an answer into its message row."""
        return AnswerWriter(session_scope, self.save_settings, committed=committed, final_hooks=self.final_save_hooks)

    def sinks(self, writer: AnswerWriter | None) -> list[Sink]:
        """What every run is told, in order: its row (if stored), the cache, the quota, then the rest."""
        return [*([writer] if writer else []), CacheWriter(self.cache), AfterRun(self._account), *self.after_run]

    async def _account(self, run: Run) -> None:
        """After an answer: settle its reserved tokens to the real count, free its slot.

        Cache hits, answers that failed before any text and runs discarded unsaved count 0."""
        failed = run.discarded or run.replay is not None or (run.status == MessageStatus.error and not run.text)
        tokens = 0 if failed else (run.prompt_tokens or 0) + (run.completion_tokens or 0)
        if run.slot and self.limiter.reserved(run.slot) is not None:
            await self.limiter.settle_tokens(run.slot, tokens)
        else:
            await self.limiter.add_tokens(run.user_id, tokens)
        if run.slot:
            await self.limiter.release(run.user_id, run.slot)

    async def reap_orphans(self, older_than: float | None = None) -> int:
        """Mark answers whose process died as interrupted.

        With several workers (Redis) the others' answers are alive and saved every DB_FLUSH_SECONDS, so
        only answers not saved for a while count as orphaned, even at start.
        """
        if older_than is None and self.redis is not None:
            older_than = max(15.0, 5 * self.settings.db_flush_seconds)
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
