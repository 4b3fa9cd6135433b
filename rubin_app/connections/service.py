"""Admin-managed model connections: validation, the sealed API key, create/change/delete with audit.

Every change is admin-only (the actor's role is checked here, not only in the UI) and audited without the key.
The key is sealed with the vault's current key-encryption key, bound to the row id (a sealed value copied into
another row does not open), and only `load_all` (the router, inside the server) ever opens it. Nothing here
commits: the caller's session scope does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import Settings
from rubin_app.connections import capabilities
from rubin_app.connections.models import Connection
from rubin_app.connections.sealing import open_key, seal_key
from rubin_app.core import outbound
from rubin_app.core.clock import utcnow
from rubin_app.models import AppSetting, Role, User
from rubin_app.services import audit, text
from rubin_app.services.chats import InputError
from rubin_app.vault.keyring import KeyringError

LOCAL_ID = 0  # the zero-configuration connection (LOCALAI_URL or the bundled engine): not a row
LOCAL_CAPABILITIES_KEY = "connection_local_capabilities"  # its capability overrides (app_settings)
NAME_MAX, PREFIX_MAX, KEY_MAX, MAX_CONNECTIONS = 60, 40, 1000, 50
_PREFIX = re.compile(r"^[A-Za-z0-9._:/-]*$")
CREATED, CHANGED, DELETED = "connection_created", "connection_changed", "connection_deleted"


@dataclass(frozen=True)
class ConnectionConfig:
    """What the router needs of a connection (the key in clear: never shown, never logged)."""

    id: int
    name: str
    base_url: str
    api_key: str = field(default="", repr=False)
    prefix: str = ""
    models: tuple[str, ...] = ()  # allow-list of upstream names; () = every model
    overrides: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)
    enabled: bool = True
    builtin: bool = False


@dataclass(frozen=True)
class ConnectionView:
    """A connection as the admin page shows it: whether it has a key, never the key."""

    id: int
    name: str
    base_url: str
    has_key: bool
    prefix: str
    models: list[str]
    overrides: dict[str, list[str]]
    enabled: bool


def local_config(settings: Settings, overrides: dict[str, list[str]] | None = None) -> ConnectionConfig:
    """The zero-configuration first connection, from the settings."""
    key = settings.localai_api_key.get_secret_value() if settings.localai_api_key else ""
    name = "LocalAI" if settings.localai_url else "Bundled engine"
    return ConnectionConfig(LOCAL_ID, name, settings.llm_base_url, key, overrides=overrides or {}, builtin=True)


def clean_name(name: str) -> str:
    """A connection name: one line of visible characters, 1-60, no "@" (it separates names on clashes)."""
    name = " ".join(text.strip_hidden(name or "").split())
    if not name or len(name) > NAME_MAX or "@" in name:
        raise InputError("bad_connection_name", max=NAME_MAX)
    return name


def clean_prefix(prefix: str) -> str:
    """A model-name prefix: letters, digits and . _ : / - only, at most 40."""
    prefix = (prefix or "").strip()
    if len(prefix) > PREFIX_MAX or not _PREFIX.match(prefix):
        raise InputError("bad_connection_prefix", max=PREFIX_MAX)
    return prefix


def clean_models(models: list[str]) -> list[str]:
    """The allow-list of upstream model names (sorted, unique; empty: every model)."""
    cleaned = sorted({text.strip_hidden(m).strip() for m in models} - {""})
    if any(len(m) > 200 for m in cleaned) or len(json.dumps(cleaned)) > 4000:
        raise InputError("bad_group_models")
    return cleaned


def normalize_url(url: str) -> str:
    """The server's base URL as the client wants it: no trailing slash, no trailing /v1 (it adds /v1/...)."""
    url = (url or "").strip().rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


async def check_url(url: str, settings: Settings) -> str:
    """A normalized base URL the outbound guard accepts: http(s), no credentials in it; private and loopback
    addresses only with CONNECTIONS_ALLOW_PRIVATE (on by default: LocalAI usually runs on the LAN)."""
    url = normalize_url(url)
    try:
        await outbound.check_url(url, allow_private=settings.connections_allow_private)
    except outbound.OutboundRefused as exc:
        if not (settings.connections_allow_private and "does not resolve" in exc.reason):
            raise InputError("bad_connection_url", reason=exc.reason) from None
    return url


def _clean_key(key: str) -> str:
    key = (key or "").strip()
    if len(key) > KEY_MAX or any(c.isspace() or ord(c) < 32 for c in key):
        raise InputError("bad_connection_key", max=KEY_MAX)
    return key


async def _require_admin(session: AsyncSession, actor_id: int) -> None:
    actor = await session.get(User, actor_id)
    if actor is None or actor.role != Role.admin:
        raise InputError("admin_only")


async def _get(session: AsyncSession, connection_id: int) -> Connection:
    row = await session.get(Connection, connection_id)
    if row is None:
        raise InputError("connection_not_found")
    return row


async def _name_free(session: AsyncSession, name: str, settings: Settings, own_id: int | None = None) -> None:
    taken = (await session.exec(select(Connection.id).where(Connection.name == name))).first()
    if (taken is not None and taken != own_id) or name.casefold() == local_config(settings).name.casefold():
        raise InputError("connection_name_taken", name=name)


def _view(row: Connection) -> ConnectionView:
    return ConnectionView(
        id=row.id or 0, name=row.name, base_url=row.base_url, has_key=bool(row.api_key_sealed), prefix=row.prefix,
        models=json.loads(row.models or "[]"), overrides=json.loads(row.capabilities or "{}"), enabled=row.enabled,
    )  # fmt: skip


async def local_overrides(*, session: AsyncSession) -> dict[str, list[str]]:
    """The admin's capability overrides for the zero-configuration connection's models."""
    row = await session.get(AppSetting, LOCAL_CAPABILITIES_KEY)
    return dict(json.loads(row.value or "{}")) if row is not None else {}


async def list_connections(*, session: AsyncSession, actor_id: int) -> list[ConnectionView]:
    """Every added connection, oldest first (admins only; keys are never part of a view)."""
    await _require_admin(session, actor_id)
    return [_view(r) for r in (await session.exec(select(Connection).order_by(col(Connection.id)))).all()]


async def load_all(*, session: AsyncSession, settings: Settings) -> list[ConnectionConfig]:
    """The zero-configuration connection, then every added one with its key opened (the router, server-side)."""
    configs = [local_config(settings, await local_overrides(session=session))]
    for row in (await session.exec(select(Connection).order_by(col(Connection.id)))).all():
        view = _view(row)
        try:
            key = open_key(view.id, row.api_key_sealed, settings)
        except (KeyringError, ValueError):
            key = ""  # a key sealed with a key this server no longer has: the server will answer "auth"
        configs.append(ConnectionConfig(
            view.id, view.name, view.base_url, key, view.prefix, tuple(view.models), view.overrides, view.enabled,
        ))  # fmt: skip
    return configs


async def create_connection(
    *, session: AsyncSession, settings: Settings, actor_id: int, name: str, base_url: str, api_key: str = "",
    prefix: str = "", models: list[str] | None = None, enabled: bool = True, ip: str = "",
) -> ConnectionView:  # fmt: skip
    """Add a connection (admins only)."""
    await _require_admin(session, actor_id)
    name, prefix, key = clean_name(name), clean_prefix(prefix), _clean_key(api_key)
    url = await check_url(base_url, settings)
    await _name_free(session, name, settings)
    if len((await session.exec(select(Connection.id))).all()) >= MAX_CONNECTIONS:
        raise InputError("too_many_connections", max=MAX_CONNECTIONS)
    row = Connection(name=name, base_url=url, prefix=prefix, models=json.dumps(clean_models(models or [])),
                     enabled=bool(enabled))  # fmt: skip
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:  # the same name added at the same moment elsewhere
        raise InputError("connection_name_taken", name=name) from None
    assert row.id is not None
    row.api_key_sealed = seal_key(row.id, key, settings)
    session.add(row)
    await session.flush()
    await audit.record(session=session, action=CREATED, actor_id=actor_id, ip=ip,
                       detail=f"connection {row.id} {name!r} {url} key={'set' if key else 'none'}")  # fmt: skip
    return _view(row)


async def update_connection(
    *, session: AsyncSession, settings: Settings, actor_id: int, connection_id: int, name: str | None = None,
    base_url: str | None = None, api_key: str | None = None, clear_key: bool = False, prefix: str | None = None,
    models: list[str] | None = None, enabled: bool | None = None, ip: str = "",
) -> ConnectionView:  # fmt: skip
    """Change a connection (admins only). Fields left None are kept; `api_key` None or "" keeps the key (it is
    write-only: the form never has it), `clear_key` removes it."""
    await _require_admin(session, actor_id)
    row = await _get(session, connection_id)
    changed: list[str] = []
    if name is not None and (name := clean_name(name)) != row.name:
        await _name_free(session, name, settings, own_id=row.id)
        row.name = name
        changed.append("name")
    if base_url is not None and (url := await check_url(base_url, settings)) != row.base_url:
        row.base_url = url
        changed.append("url")
    if clear_key or (api_key and (key := _clean_key(api_key))):
        row.api_key_sealed = "" if clear_key else seal_key(connection_id, key, settings)
        changed.append("key")
    if prefix is not None and (prefix := clean_prefix(prefix)) != row.prefix:
        row.prefix = prefix
        changed.append("prefix")
    if models is not None:
        row.models = json.dumps(clean_models(models))
        changed.append("models")
    if enabled is not None and bool(enabled) != row.enabled:
        row.enabled = bool(enabled)
        changed.append("enabled" if enabled else "disabled")
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()
    await audit.record(session=session, action=CHANGED, actor_id=actor_id, ip=ip,
                       detail=f"connection {row.id} {row.name!r}: {', '.join(changed) or 'nothing'}")  # fmt: skip
    return _view(row)


async def delete_connection(*, session: AsyncSession, actor_id: int, connection_id: int, ip: str = "") -> None:
    """Remove a connection and its sealed key (admins only)."""
    await _require_admin(session, actor_id)
    row = await _get(session, connection_id)
    await session.delete(row)
    await session.flush()
    await audit.record(session=session, action=DELETED, actor_id=actor_id, ip=ip,
                       detail=f"connection {connection_id} {row.name!r}")  # fmt: skip


async def set_capabilities(
    *, session: AsyncSession, actor_id: int, connection_id: int, model: str, values: list[str] | None, ip: str = ""
) -> dict[str, list[str]]:
    """Override what one upstream model of a connection can do (None: back to the guess from its name)."""
    await _require_admin(session, actor_id)
    model = text.strip_hidden(model or "").strip()
    if not model or len(model) > 200:
        raise InputError("bad_setting")
    try:
        cleaned = capabilities.clean(values) if values is not None else None
    except ValueError:
        raise InputError("bad_setting") from None
    if connection_id == LOCAL_ID:
        setting = await session.get(AppSetting, LOCAL_CAPABILITIES_KEY) or AppSetting(key=LOCAL_CAPABILITIES_KEY)
        overrides = _apply(json.loads(setting.value or "{}"), model, cleaned)
        setting.value, setting.updated_at = json.dumps(overrides), utcnow()
        session.add(setting)
    else:
        row = await _get(session, connection_id)
        overrides = _apply(json.loads(row.capabilities or "{}"), model, cleaned)
        row.capabilities, row.updated_at = json.dumps(overrides), utcnow()
        session.add(row)
    if len(json.dumps(overrides)) > 8000:
        raise InputError("bad_setting")
    await session.flush()
    shown = ",".join(cleaned) if cleaned is not None else "guess"
    await audit.record(session=session, action=CHANGED, actor_id=actor_id, ip=ip,
                       detail=f"connection {connection_id} capabilities {model}={shown}")  # fmt: skip
    return overrides


def _apply(overrides: dict[str, list[str]], model: str, values: list[str] | None) -> dict[str, list[str]]:
    if values is None:
        overrides.pop(model, None)
    else:
        overrides[model] = values
    return overrides
