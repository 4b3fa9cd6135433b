"""/api/v1/admin/connections: the model connections, for an admin's program (an `admin` key of an admin).

The same service as the admin page (admin-only, audited); the API key is write-only here too: it goes in with
a create or a change and never comes back out (`has_key` says whether one is set).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.api.auth import client_ip
from rubin_app.api.deps import require
from rubin_app.connections import service
from rubin_app.connections.router import ConnectionHealth
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime

Admin = Annotated[KeyPrincipal, Depends(require("admin"))]
router = APIRouter(tags=["model connections (admin)"])


class NewConnection(BaseModel):
    """A connection to add."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    base_url: str = Field(max_length=2048)
    api_key: str = Field(default="", max_length=2000, description="Write-only: stored encrypted, never returned.")
    prefix: str = Field(default="", max_length=200)
    models: list[str] = Field(default_factory=list, max_length=500, description="Allow-list; empty: every model.")
    enabled: bool = True


class ConnectionChange(BaseModel):
    """Fields to change (absent: kept); `api_key` replaces the key, `clear_key` removes it."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=2048)
    api_key: str | None = Field(default=None, max_length=2000)
    clear_key: bool = False
    prefix: str | None = Field(default=None, max_length=200)
    models: list[str] | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class Capabilities(BaseModel):
    """A model's capabilities (null: guessed from its name again)."""

    model_config = ConfigDict(extra="forbid")
    capabilities: list[str] | None = Field(default=None, max_length=8)


class ConnectionOut(BaseModel):
    """A connection as the API shows it: never its key."""

    id: int
    name: str
    base_url: str
    has_key: bool
    prefix: str
    models: list[str]
    capabilities: dict[str, list[str]]
    enabled: bool
    ok: bool | None = None  # its last model-list fetch (None: not asked yet)
    error: str = ""
    model_count: int = 0

    @classmethod
    def of(cls, view: service.ConnectionView, health: ConnectionHealth | None) -> ConnectionOut:
        """From the service's view and the router's health."""
        return cls(
            id=view.id, name=view.name, base_url=view.base_url, has_key=view.has_key, prefix=view.prefix,
            models=view.models, capabilities=view.overrides, enabled=view.enabled,
            ok=health.ok if health else None, error=health.error if health else "",
            model_count=health.models if health else 0,
        )  # fmt: skip


def _health() -> dict[int, ConnectionHealth]:
    return {h.id: h for h in get_runtime().router.health()}


@router.get("/admin/connections", response_model=list[ConnectionOut])
async def list_connections(key: Admin) -> list[ConnectionOut]:
    """The added connections (the first one comes from the settings and is not listed)."""
    async with session_scope(read_only=True) as session:
        views = await service.list_connections(session=session, actor_id=key.user_id)
    health = _health()
    return [ConnectionOut.of(v, health.get(v.id)) for v in views]


@router.post("/admin/connections", response_model=ConnectionOut, status_code=201)
async def add_connection(body: NewConnection, request: Request, key: Admin) -> ConnectionOut:
    """Add a connection; its models join the list on every worker at once."""
    rt = get_runtime()
    async with session_scope() as session:
        view = await service.create_connection(
            session=session, settings=rt.settings, actor_id=key.user_id, ip=client_ip(request), **body.model_dump()
        )
    await rt.router.changed()
    return ConnectionOut.of(view, _health().get(view.id))


@router.patch("/admin/connections/{connection_id}", response_model=ConnectionOut)
async def change_connection(connection_id: int, body: ConnectionChange, request: Request, key: Admin) -> ConnectionOut:
    """Change a connection (a wrong id: 404)."""
    rt = get_runtime()
    async with session_scope() as session:
        view = await service.update_connection(
            session=session, settings=rt.settings, actor_id=key.user_id, connection_id=connection_id,
            ip=client_ip(request), **body.model_dump(),
        )  # fmt: skip
    await rt.router.changed()
    return ConnectionOut.of(view, _health().get(view.id))


@router.delete("/admin/connections/{connection_id}", status_code=204)
async def delete_connection(connection_id: int, request: Request, key: Admin) -> Response:
    """Delete a connection and its encrypted key."""
    async with session_scope() as session:
        await service.delete_connection(
            session=session, actor_id=key.user_id, connection_id=connection_id, ip=client_ip(request)
        )
    await get_runtime().router.changed()
    return Response(status_code=204)


@router.put("/admin/connections/{connection_id}/capabilities/{model:path}")
async def set_capabilities(
    connection_id: int, model: str, body: Capabilities, request: Request, key: Admin
) -> dict[str, list[str]]:
    """Override what one of a connection's models can do (connection 0: the one from the settings)."""
    async with session_scope() as session:
        overrides = await service.set_capabilities(
            session=session, actor_id=key.user_id, connection_id=connection_id, model=model,
            values=body.capabilities, ip=client_ip(request),
        )  # fmt: skip
    await get_runtime().router.changed()
    return overrides
