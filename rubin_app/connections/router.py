"""The model router: every connection's models in one list with unique names, and which server answers which.

Names: the zero-configuration connection's models keep their own names (an instance with no added connection
sees exactly what it saw before); an added connection's are its prefix + the upstream name, and a name already
taken by an earlier connection becomes "name@connection". Each connection has its own cached list
(`ModelCatalog`, shared through Redis), so one that fails keeps its last list or shows as unreachable while
the others keep answering. `client_for(model)` gives the client and the upstream model name for a merged name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from rubin_app.accounts.permissions import Permissions
from rubin_app.config import Settings
from rubin_app.connections import capabilities
from rubin_app.connections.service import LOCAL_ID, ConnectionConfig, load_all, local_config
from rubin_app.llm.client import LLMClient, LLMError
from rubin_app.services.bus import Bus
from rubin_app.services.catalog import ModelCatalog
from rubin_app.services.redis_store import RedisStore

log = logging.getLogger(__name__)
RELOAD_SECONDS = 10.0  # how stale this worker's copy of the connection rows may be (changes also come by bus)
CHANGED = "connections_changed"  # bus message: an admin changed a connection
ADDED_WAIT = 2.0  # longest the merged list waits for an added connection's list (its fetch goes on behind)
RETRY_FAILED = 10.0  # an added connection whose list failed is asked again this often at most (Refresh: at once)


@dataclass(frozen=True)
class ModelEntry:
    """One model of the merged list: its name here, its name upstream, where it lives and what it can do."""

    name: str
    upstream: str
    connection_id: int
    connection: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class ConnectionHealth:
    """A connection as the picker, the admin page and health see it."""

    id: int
    name: str
    enabled: bool
    ok: bool | None  # None: not asked yet
    error: str  # an LLMError code, or ""
    models: int


@dataclass
class _Upstream:
    config: ConnectionConfig
    client: LLMClient
    catalog: ModelCatalog
    asked_at: float = 0.0  # when its list was last asked for (a failed one waits RETRY_FAILED)


class ModelRouter:
    """The connections of this worker, their model lists merged, and routing by model name."""

    def __init__(
        self, settings: Settings, local_client: LLMClient, local_catalog: ModelCatalog, store: RedisStore | None,
        session_factory: Callable[..., AbstractAsyncContextManager[Any]], bus: Bus | None = None,
    ) -> None:  # fmt: skip
        self.settings, self.store, self._sessions, self.bus = settings, store, session_factory, bus
        if bus is not None:
            bus.on(CHANGED, self._on_changed)
        local = _Upstream(local_config(settings), local_client, local_catalog)
        self._upstreams: dict[int, _Upstream] = {LOCAL_ID: local}
        self._names: dict[str, tuple[int, str]] = {}
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._retired: list[LLMClient] = []  # replaced clients: a run may still stream through one (closed at exit)

    # --- the connection rows ------------------------------------------------------------------------
    async def load(self, *, force: bool = False) -> None:
        """Read the connection rows when this worker's copy is older than RELOAD_SECONDS (or `force`)."""
        if not force and time.monotonic() - self._loaded_at < RELOAD_SECONDS:
            return
        async with self._lock:
            if not force and time.monotonic() - self._loaded_at < RELOAD_SECONDS:
                return
            try:
                async with self._sessions(read_only=True) as session:
                    configs = await load_all(session=session, settings=self.settings)
            except Exception:  # the database is away: keep the connections known so far
                log.warning("could not read the model connections; keeping the last ones", exc_info=True)
            else:
                self._apply(configs)
            self._loaded_at = time.monotonic()

    def forget(self) -> None:
        """The rows changed (here or on another worker): read them again on the next use."""
        self._loaded_at = 0.0

    async def changed(self) -> None:
        """An admin changed a connection (call after the commit): this worker reloads now, the others on the
        bus message (or within RELOAD_SECONDS without Redis)."""
        await self.load(force=True)
        if self.bus is not None:
            await self.bus.publish(CHANGED)

    async def _on_changed(self, _: dict[str, Any]) -> None:
        self.forget()

    def _apply(self, configs: list[ConnectionConfig]) -> None:
        seen = {c.id for c in configs}
        for cid in [cid for cid in self._upstreams if cid not in seen and cid != LOCAL_ID]:
            self._retired.append(self._upstreams.pop(cid).client)
        for config in configs:
            known = self._upstreams.get(config.id)
            if known is not None and (config.id == LOCAL_ID or _same_server(known.config, config)):
                known.config = config
                continue
            if known is not None:
                self._retired.append(known.client)
            client = self._client(config)
            catalog = ModelCatalog(client, self.settings.models_cache_ttl, self.store, key=f"models:{config.id}")
            self._upstreams[config.id] = _Upstream(config, client, catalog)

    def _client(self, config: ConnectionConfig) -> LLMClient:
        s = self.settings
        return LLMClient(
            config.base_url, api_key=config.api_key or None, connect_timeout=s.llm_connect_timeout,
            read_timeout=s.llm_read_timeout, retries=s.llm_retries, backoff=s.llm_retry_backoff,
        )  # fmt: skip

    def _ordered(self) -> list[_Upstream]:
        return [self._upstreams[cid] for cid in sorted(self._upstreams)]

    # --- the merged model list ------------------------------------------------------------------------
    async def entries(self, *, refresh: bool = False) -> list[ModelEntry]:
        """Every enabled connection's models (within its allow-list), names made unique, in connection order."""
        await self.load(force=refresh)
        live = [u for u in self._ordered() if u.config.enabled]
        lists = await asyncio.gather(*(self._models_of(u, refresh) for u in live))
        entries: list[ModelEntry] = []
        taken: set[str] = set()
        for upstream, models in zip(live, lists, strict=True):
            config = upstream.config
            for model in models:
                if config.models and model not in config.models:
                    continue
                name = config.prefix + model
                if name in taken:
                    name = f"{name}@{config.name}"
                if name in taken:
                    continue
                taken.add(name)
                caps = tuple(capabilities.of(model, config.overrides))
                entries.append(ModelEntry(name, model, config.id, config.name, caps))
        self._names = {e.name: (e.connection_id, e.upstream) for e in entries}
        return entries

    async def _models_of(self, upstream: _Upstream, refresh: bool) -> list[str]:
        """A connection's list; an added one that hangs holds the merged list up ADDED_WAIT at most (its fetch goes
        on, bounded by the catalog's own timeout), and one that failed is asked again after RETRY_FAILED. The
        first connection's list is asked as it always was."""
        if upstream.config.id == LOCAL_ID:
            return await upstream.catalog.get(refresh=refresh)
        now = time.monotonic()
        if not refresh and upstream.catalog.error is not None and now - upstream.asked_at < RETRY_FAILED:
            return upstream.catalog.models  # down a moment ago: no request (and no wait) on every send
        upstream.asked_at = now
        try:
            return await asyncio.wait_for(upstream.catalog.get(refresh=refresh), ADDED_WAIT)
        except TimeoutError:
            return upstream.catalog.models

    async def get(self, *, refresh: bool = False) -> list[str]:
        """The merged model names (what the local catalog's `get` was for one server)."""
        return [e.name for e in await self.entries(refresh=refresh)]

    async def allowed(self, permissions: Permissions, *, refresh: bool = False) -> list[str]:
        """The merged names a user with `permissions` may use (the picker, /v1/models)."""
        return permissions.filter(await self.get(refresh=refresh))

    async def allowed_entries(self, permissions: Permissions, *, refresh: bool = False) -> list[ModelEntry]:
        """The entries a user with `permissions` may use."""
        return [e for e in await self.entries(refresh=refresh) if permissions.allows_model(e.name)]

    @property
    def error(self) -> LLMError | None:
        """Why there is no model at all: the first failing connection's error (None while any has models)."""
        live = [u for u in self._ordered() if u.config.enabled]
        if any(u.catalog.models for u in live):
            return None
        return next((u.catalog.error for u in live if u.catalog.error is not None), None)

    # --- routing ----------------------------------------------------------------------------------
    def client_for(self, model: str) -> tuple[LLMClient, str]:
        """The client of the connection that serves `model`, and the model's upstream name.

        A name not in the last merged list is matched by its "@connection" suffix, then by a connection's
        prefix; anything else goes to the zero-configuration connection as it is (which answers as before)."""
        hit = self._names.get(model)
        if hit is not None and (known := self._upstreams.get(hit[0])) is not None and known.config.enabled:
            return known.client, hit[1]
        added = [u for u in self._ordered() if u.config.id != LOCAL_ID and u.config.enabled]
        base, at, name = model.rpartition("@")
        for upstream in added if at else []:
            if upstream.config.name == name:
                return upstream.client, base.removeprefix(upstream.config.prefix)
        for upstream in added:
            if upstream.config.prefix and model.startswith(upstream.config.prefix):
                return upstream.client, model.removeprefix(upstream.config.prefix)
        return self._upstreams[LOCAL_ID].client, model

    async def resolve(self, model: str) -> tuple[LLMClient, str]:
        """`client_for` after making sure this worker knows the connections (for callers that may run before any
        model list was read: a job at start, an embedder)."""
        await self.load()
        if model not in self._names:
            await self.entries()
        return self.client_for(model)

    def capabilities_of(self, model: str) -> tuple[str, ...]:
        """What a merged model can do (the guess from its name when it is not listed)."""
        hit = self._names.get(model)
        known = self._upstreams.get(hit[0]) if hit else None
        if hit is None or known is None:
            return tuple(capabilities.guess(model))
        return tuple(capabilities.of(hit[1], known.config.overrides))

    # --- health -----------------------------------------------------------------------------------
    def health(self) -> list[ConnectionHealth]:
        """Each connection's last known state (from its model list's last fetch)."""
        return [_health(u) for u in self._ordered()]

    async def check(self, connection_id: int) -> ConnectionHealth:
        """Ask one connection for its model list now (the admin's Test button)."""
        await self.load(force=True)
        upstream = self._upstreams.get(connection_id)
        if upstream is None:
            return ConnectionHealth(connection_id, "", False, False, "not_found", 0)
        await upstream.catalog.get(refresh=True)
        return _health(upstream)

    async def aclose(self) -> None:
        """Close every client but the zero-configuration one (the runtime owns it)."""
        clients = [u.client for u in self._ordered() if u.config.id != LOCAL_ID] + self._retired
        self._retired = []
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)


def _same_server(old: ConnectionConfig, new: ConnectionConfig) -> bool:
    return old.base_url == new.base_url and old.api_key == new.api_key


def _health(upstream: _Upstream) -> ConnectionHealth:
    config, catalog = upstream.config, upstream.catalog
    asked = catalog.fetched_at > 0 or catalog.error is not None
    ok = (catalog.error is None) if asked else None
    error = catalog.error.code if catalog.error is not None else ""
    return ConnectionHealth(config.id, config.name, config.enabled, ok, error, len(catalog.models))
