"""Admin state: model connections (add, change, switch off, test, delete; capability overrides per model).

Every handler re-checks the role; the service checks it again. The API key field is write-only: the state never
holds a key (a form's key goes straight to the service and is dropped), rows only say whether one is set.
"""

from __future__ import annotations

import dataclasses

import reflex as rx

from rubin_app.admin.state import AdminState
from rubin_app.connections import capabilities
from rubin_app.connections import service as connections
from rubin_app.connections.router import ConnectionHealth
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime


@dataclasses.dataclass
class ConnectionRow:
    """A connection as the admin page shows it (never its key)."""

    id: int = 0
    name: str = ""
    base_url: str = ""
    has_key: bool = False
    prefix: str = ""
    models: str = ""  # the allow-list, comma-separated
    enabled: bool = True
    builtin: bool = False
    status: str = ""  # translated: reachable · n models / unreachable / not asked yet / disabled
    ok: bool = False


@dataclasses.dataclass
class CapabilityRow:
    """A listed model and what it can do (ticked: the override, else the guess)."""

    name: str = ""
    upstream: str = ""
    connection_id: int = 0
    connection: str = ""
    capabilities: list[str] = dataclasses.field(default_factory=list)
    overridden: bool = False


def _split(models: str) -> list[str]:
    return [m.strip() for m in models.replace("\n", ",").split(",") if m.strip()]


class ConnectionsState(AdminState):
    """The connections section of the admin page."""

    connection_rows: list[ConnectionRow] = []
    capability_rows: list[CapabilityRow] = []
    connections_error: str = ""

    def _status(self, health: ConnectionHealth | None, enabled: bool) -> tuple[str, bool]:
        if not enabled:
            return self._t("connection_disabled"), False
        if health is None or health.ok is None:
            return self._t("connection_unknown"), False
        if health.ok:
            return self._t("connection_ok", count=health.models), True
        return f"{self._t('connection_unreachable')} ({self._t(f'err_{health.error}')})", False

    @rx.event
    async def load_connections(self) -> None:
        """The connections with their state, and every listed model's capabilities (admins only)."""
        principal = await self._require(admin=True)
        rt = get_runtime()
        async with session_scope(read_only=True) as session:
            views = await connections.list_connections(session=session, actor_id=principal.user_id)
            local_overrides = await connections.local_overrides(session=session)
        entries = await rt.router.entries()
        health = {h.id: h for h in rt.router.health()}
        local = connections.local_config(rt.settings)
        rows = [
            ConnectionRow(
                id=local.id,
                name=local.name,
                base_url=local.base_url,
                has_key=bool(local.api_key),
                builtin=True,
                enabled=True,
            )
        ]
        rows += [
            ConnectionRow(
                id=v.id,
                name=v.name,
                base_url=v.base_url,
                has_key=v.has_key,
                prefix=v.prefix,
                models=", ".join(v.models),
                enabled=v.enabled,
            )
            for v in views
        ]
        for row in rows:
            row.status, row.ok = self._status(health.get(row.id), row.enabled)
        self.connection_rows = rows
        overrides = {v.id: v.overrides for v in views} | {connections.LOCAL_ID: local_overrides}
        self.capability_rows = [
            CapabilityRow(
                name=e.name,
                upstream=e.upstream,
                connection_id=e.connection_id,
                connection=e.connection,
                capabilities=list(e.capabilities),
                overridden=e.upstream in overrides.get(e.connection_id, {}),
            )
            for e in entries
        ]

    async def _change(self, action) -> None:
        principal = await self._require(admin=True)
        try:
            async with session_scope() as session:
                await action(session, principal.user_id)
        except InputError as exc:
            self.connections_error = self._t(f"err_{exc.code}", **exc.params)
        else:
            self.connections_error = ""
            await get_runtime().router.changed()  # this worker now, the others through the bus
        await self.load_connections()
        await self._reload(principal.user_id)  # the audit log shows the change

    @rx.event
    async def add_connection(self, form: dict) -> None:
        """Add a connection from the form (its key goes to the service, sealed, and nowhere else)."""
        settings = get_runtime().settings

        async def action(session, actor_id: int) -> None:
            await connections.create_connection(
                session=session,
                settings=settings,
                actor_id=actor_id,
                ip=self._client_ip(),
                **_form_fields(form),
            )

        await self._change(action)

    @rx.event
    async def save_connection(self, form: dict) -> None:
        """Save a connection's form (an empty key field keeps the key)."""
        settings = get_runtime().settings

        async def action(session, actor_id: int) -> None:
            await connections.update_connection(
                session=session,
                settings=settings,
                actor_id=actor_id,
                connection_id=int(form.get("id", 0)),
                clear_key=bool(form.get("clear_key")),
                ip=self._client_ip(),
                **_form_fields(form),
            )

        await self._change(action)

    @rx.event
    async def set_enabled(self, connection_id: int, on: bool) -> None:
        """Switch a connection on or off (off: its models leave the picker; nothing else changes)."""
        settings = get_runtime().settings

        async def action(session, actor_id: int) -> None:
            await connections.update_connection(
                session=session,
                settings=settings,
                actor_id=actor_id,
                connection_id=int(connection_id),
                enabled=bool(on),
                ip=self._client_ip(),
            )

        await self._change(action)

    @rx.event
    async def delete_connection(self, connection_id: int) -> None:
        """Delete a connection and its sealed key."""

        async def action(session, actor_id: int) -> None:
            await connections.delete_connection(
                session=session, actor_id=actor_id, connection_id=int(connection_id), ip=self._client_ip()
            )

        await self._change(action)

    @rx.event
    async def test_connection(self, connection_id: int) -> None:
        """Ask a connection for its model list now and show the outcome."""
        await self._require(admin=True)
        await get_runtime().router.check(int(connection_id))
        await self.load_connections()

    @rx.event
    async def set_capability(self, index: int, capability: str, on: bool) -> None:
        """Tick or untick one capability of a listed model (the ticks become its override)."""
        row = self.capability_rows[int(index)] if 0 <= int(index) < len(self.capability_rows) else None
        if row is None or capability not in capabilities.CAPABILITIES:
            return
        values = sorted(set(row.capabilities) | {capability} if on else set(row.capabilities) - {capability})
        await self._set_capabilities(row, values)

    @rx.event
    async def reset_capabilities(self, index: int) -> None:
        """Forget a model's override: its capabilities are guessed from its name again."""
        if 0 <= int(index) < len(self.capability_rows):
            await self._set_capabilities(self.capability_rows[int(index)], None)

    async def _set_capabilities(self, row: CapabilityRow, values: list[str] | None) -> None:
        async def action(session, actor_id: int) -> None:
            await connections.set_capabilities(
                session=session,
                actor_id=actor_id,
                connection_id=row.connection_id,
                model=row.upstream,
                values=values,
                ip=self._client_ip(),
            )

        await self._change(action)


def _form_fields(form: dict) -> dict[str, object]:
    """The fields the add and edit forms share, as the service takes them."""
    return {
        "name": str(form.get("name", "")),
        "base_url": str(form.get("base_url", "")),
        "api_key": str(form.get("api_key", "")),
        "prefix": str(form.get("prefix", "")),
        "models": _split(str(form.get("models", ""))),
    }
