"""API keys: many per user, named, shown once, stored as SHA-256, with scopes, expiry, limits and revocation.

A key acts as its user: every limit, quota, audit record and isolation rule applies to what it does. Every
query here filters by the acting user (an admin's listing of everyone's keys is the one exception, and says so).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.accounts import groups
from rubin_app.accounts.models import ApiKey
from rubin_app.core.clock import utcnow
from rubin_app.models import Role, User
from rubin_app.services import audit, text
from rubin_app.services.chats import InputError
from rubin_app.webhooks import events as webhook_events

KEY_PREFIX = "rk-"  # every Rubin key starts so (secret scanners can match it)
SHOWN_PREFIX = 11  # characters kept in clear for lists: "rk-" and 8 of the random part
SCOPES = ("chat", "conversations:read", "conversations:write", "admin")
DEFAULT_SCOPES = ("chat", "conversations:read", "conversations:write")
MAX_KEYS_PER_USER = 50
MAX_EXPIRY_DAYS = 3650
LAST_USE_EVERY = timedelta(minutes=1)  # how often a key's last use is written


def hash_key(key: str) -> str:
    """SHA-256 of a key (a random 256-bit secret: a fast hash is enough, as for session tokens)."""
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(value: str) -> bool:
    """Whether a string has the shape of a Rubin key (cheap check before any lookup)."""
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 100 and value.isascii()


@dataclass(frozen=True)
class KeyPrincipal:
    """Who acts through a key: the user, with the key's scopes and limits."""

    user_id: int
    role: Role
    email: str
    key_id: int
    key_hash: str
    scopes: frozenset[str]
    requests_per_minute: int | None
    tokens_per_day: int | None
    expires_at: datetime | None
    last_used_at: datetime | None

    @property
    def is_admin(self) -> bool:
        """Admins run the instance (the `admin` scope also needs the admin role)."""
        return self.role == Role.admin

    def allows(self, scope: str) -> bool:
        """Whether the key may do `scope` (admin also needs the user to be an admin now)."""
        if scope == "admin":
            return "admin" in self.scopes and self.is_admin
        return scope in self.scopes


def parse_scopes(scopes: list[str] | str | None, *, is_admin: bool) -> tuple[str, ...]:
    """Validated scopes (space or comma separated, or a list); the default set when empty."""
    if scopes is None or scopes == "" or scopes == []:
        return DEFAULT_SCOPES
    items = scopes.replace(",", " ").split() if isinstance(scopes, str) else [s.strip() for s in scopes]
    unknown = sorted({s for s in items if s not in SCOPES})
    if unknown:
        raise InputError("bad_scope", scope=", ".join(unknown), allowed=", ".join(SCOPES))
    if "admin" in items and not is_admin:
        raise InputError("admin_only")
    return tuple(s for s in SCOPES if s in items)


async def create_key(
    *, session: AsyncSession, user_id: int, name: str, scopes: list[str] | str | None = None,
    expires_days: float | None = None, requests_per_minute: int | None = None, tokens_per_day: int | None = None,
    actor_id: int | None = None, ip: str = "",
) -> tuple[ApiKey, str]:  # fmt: skip
    """A new key for the user: (its row, the key itself — shown once, never stored)."""
    user = await session.get(User, user_id)
    if user is None:
        raise InputError("account_not_found")
    if not (await groups.effective(session=session, user_id=user_id)).api_keys:
        raise InputError("api_keys_not_allowed")
    name = " ".join(text.strip_hidden(name).split())
    if not name:
        raise InputError("empty_name")
    if len(name) > 100:
        raise InputError("name_too_long")
    chosen = parse_scopes(scopes, is_admin=user.role == Role.admin)
    if expires_days is not None and not 0 < expires_days <= MAX_EXPIRY_DAYS:
        raise InputError("bad_expiry", max=MAX_EXPIRY_DAYS)
    for value in (requests_per_minute, tokens_per_day):
        if value is not None and value < 0:
            raise InputError("bad_limit")
    count = (
        await session.exec(select(func.count()).where(ApiKey.user_id == user_id, col(ApiKey.revoked_at).is_(None)))
    ).one()
    if count >= MAX_KEYS_PER_USER:
        raise InputError("too_many_keys", max=MAX_KEYS_PER_USER)
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        user_id=user_id, name=name, prefix=plain[:SHOWN_PREFIX], key_hash=hash_key(plain), scopes=" ".join(chosen),
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
        requests_per_minute=requests_per_minute, tokens_per_day=tokens_per_day,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    await audit.record(
        session=session, action="api_key_created", user_id=user_id, actor_id=actor_id or user_id,
        email=user.email, ip=ip, detail=f"key {row.id} ({row.prefix}…) scopes {row.scopes}",
    )  # fmt: skip
    await webhook_events.emit(
        session, event_type="api_key.created", user_id=user_id,
        data={"api_key_id": row.id, "name": row.name, "prefix": row.prefix, "scopes": row.scopes.split(),
              "expires_at": row.expires_at},
    )  # fmt: skip
    return row, plain


async def list_keys(*, session: AsyncSession, user_id: int) -> list[ApiKey]:
    """The user's keys, newest first (revoked ones too: they show when and that they were revoked)."""
    stmt = select(ApiKey).where(ApiKey.user_id == user_id).order_by(col(ApiKey.id).desc())
    return list((await session.exec(stmt)).all())


async def list_all_keys(*, session: AsyncSession, limit: int = 500) -> list[tuple[ApiKey, str]]:
    """ADMIN ONLY (the caller checks the role): every user's keys with the owner's email, newest first."""
    stmt = (
        select(ApiKey, User.email)
        .join(User, col(User.id) == ApiKey.user_id)
        .order_by(col(ApiKey.id).desc())
        .limit(limit)
    )
    return [(key, email or "") for key, email in (await session.exec(stmt)).all()]


async def revoke_key(*, session: AsyncSession, key_id: int, user_id: int | None, actor_id: int, ip: str = "") -> ApiKey:
    """Revoke a key of `user_id` (None: any user's, for an admin — the caller checks the role).

    Another user's key id is "not found", exactly like a missing one. Revoking twice is not an error."""
    key = await session.get(ApiKey, key_id)
    if key is None or (user_id is not None and key.user_id != user_id):
        raise InputError("key_not_found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        owner = await session.get(User, key.user_id)
        await audit.record(
            session=session, action="api_key_revoked", user_id=key.user_id, actor_id=actor_id,
            email=owner.email if owner else None, ip=ip, detail=f"key {key.id} ({key.prefix}…)",
        )  # fmt: skip
        await webhook_events.emit(
            session, event_type="api_key.revoked", user_id=key.user_id, data={"api_key_id": key.id, "name": key.name}
        )
    return key


async def resolve_key(*, session: AsyncSession, key: str) -> tuple[KeyPrincipal | None, str]:
    """(principal, "") for a live key, or (None, error code): invalid, expired, revoked, pending account, or a
    user whose groups no longer allow API keys."""
    if not looks_like_key(key):
        return None, "invalid_api_key"
    stmt = select(ApiKey, User).join(User, col(User.id) == ApiKey.user_id).where(ApiKey.key_hash == hash_key(key))
    found = (await session.exec(stmt)).first()
    if found is None:
        return None, "invalid_api_key"
    row, user = found
    if row.revoked_at is not None:
        return None, "invalid_api_key"
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None, "expired_api_key"
    if user.role == Role.pending:
        return None, "account_pending"
    assert row.id is not None and user.id is not None
    if not (await groups.effective(session=session, user_id=user.id)).api_keys:
        return None, "api_keys_not_allowed"  # the user's groups no longer allow keys: existing ones stop too
    return KeyPrincipal(
        user_id=user.id, role=user.role, email=user.email or "", key_id=row.id, key_hash=row.key_hash,
        scopes=frozenset(row.scopes.split()), requests_per_minute=row.requests_per_minute,
        tokens_per_day=row.tokens_per_day, expires_at=row.expires_at, last_used_at=row.last_used_at,
    ), ""  # fmt: skip


async def touch_key(*, session: AsyncSession, key_id: int, ip: str) -> None:
    """Record a key's use (its last time and address)."""
    await session.exec(
        update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=utcnow(), last_used_ip=ip[:64])
    )
