"""/api/v1/keys and /api/v1/usage: a user's own keys and usage; with the `admin` scope, everyone's.

A key can create keys for its own user with at most its own scopes (a `chat` key cannot mint an `admin` one),
list them and revoke them. Revocation reaches every worker at once (the worker bus).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from rubin_app.accounts import api_keys
from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.api.auth import client_ip
from rubin_app.api.deps import key_principal, require
from rubin_app.api.v1.schemas import KeyCreated, KeyOut, NewKey, UsageReport, UsageRow
from rubin_app.core.errors import ApiError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.usage import service as usage

Any_ = Annotated[KeyPrincipal, Depends(key_principal)]
Admin = Annotated[KeyPrincipal, Depends(require("admin"))]
router = APIRouter(tags=["keys and usage"])


@router.get("/keys", response_model=list[KeyOut])
async def list_keys(key: Any_) -> list[KeyOut]:
    """The user's keys (revoked ones too), newest first."""
    async with session_scope(read_only=True) as session:
        rows = await api_keys.list_keys(session=session, user_id=key.user_id)
    return [KeyOut.of(r) for r in rows]


@router.post("/keys", response_model=KeyCreated, status_code=201)
async def create_key(body: NewKey, request: Request, key: Any_) -> KeyCreated:
    """A new key for the same user, with at most the calling key's scopes; the key is in the answer, once."""
    wanted = set(body.scopes) or set(api_keys.DEFAULT_SCOPES)
    if not wanted <= key.scopes:
        raise ApiError("insufficient_scope", "a key cannot create a key with scopes it does not have", param="scopes")
    async with session_scope() as session:
        row, plain = await api_keys.create_key(
            session=session, user_id=key.user_id, name=body.name, scopes=sorted(wanted),
            expires_days=body.expires_days, requests_per_minute=body.requests_per_minute,
            tokens_per_day=body.tokens_per_day, actor_id=key.user_id, ip=client_ip(request),
        )  # fmt: skip
    return KeyCreated(**KeyOut.of(row).model_dump(), key=plain)


@router.delete("/keys/{key_id}", response_model=KeyOut)
async def revoke_key(key_id: int, request: Request, key: Any_) -> KeyOut:
    """Revoke one of the user's keys (another user's key id: 404)."""
    return await _revoke(key_id, key, owner=key.user_id, ip=client_ip(request))


@router.get("/admin/keys", response_model=list[KeyOut])
async def list_all_keys(_: Admin) -> list[KeyOut]:
    """Every user's keys, with their owners (admin)."""
    async with session_scope(read_only=True) as session:
        rows = await api_keys.list_all_keys(session=session)
    return [KeyOut.of(r, email) for r, email in rows]


@router.delete("/admin/keys/{key_id}", response_model=KeyOut)
async def revoke_any_key(key_id: int, request: Request, key: Admin) -> KeyOut:
    """Revoke anyone's key (admin)."""
    return await _revoke(key_id, key, owner=None, ip=client_ip(request))


async def _revoke(key_id: int, key: KeyPrincipal, *, owner: int | None, ip: str) -> KeyOut:
    async with session_scope() as session:
        row = await api_keys.revoke_key(session=session, key_id=key_id, user_id=owner, actor_id=key.user_id, ip=ip)
        out = KeyOut.of(row)
        digest = row.key_hash
    await get_runtime().keys.revoked(digest)
    return out


Grouping = Literal["day", "model", "key", "source"]


@router.get("/usage", response_model=UsageReport)
async def my_usage(key: Any_, days: Annotated[int, Query(ge=1, le=366)] = 30, by: Grouping = "day") -> UsageReport:
    """The user's usage (UI and API) per day, model, key or source."""
    async with session_scope(read_only=True) as session:
        rows = await usage.summary(session=session, user_id=key.user_id, days=days, by=by)
    return UsageReport(days=days, by=by, data=[UsageRow(**r) for r in rows])


@router.get("/admin/usage", response_model=UsageReport)
async def all_usage(
    _: Admin, days: Annotated[int, Query(ge=1, le=366)] = 30, by: Literal[Grouping, "user"] = "day"
) -> UsageReport:
    """Everyone's usage (admin), per day, model, key, source or user."""
    async with session_scope(read_only=True) as session:
        rows = await usage.summary(session=session, user_id=None, days=days, by=by)
    return UsageReport(days=days, by=by, data=[UsageRow(**r) for r in rows])
