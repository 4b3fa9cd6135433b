"""Server-side sign-in sessions: the browser holds a random token in an HttpOnly cookie, the table its hash."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.cookies import CookieError, SimpleCookie
from typing import Any

from sqlalchemy import update
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.models import AuthSession, Role, User
from rubin_app.models.user import utcnow

COOKIE_NAME = "rubin_session"
TOKEN_BYTES = 32
log = logging.getLogger(__name__)

# Called with the token hashes of sessions that just ended (sign-out, revocation, account deletion), so
# whatever was kept for them elsewhere (the tabs' Reflex states) is purged. Registered by the app at start.
SessionsEnded = Callable[[list[str]], Awaitable[None]]
ended_hooks: list[SessionsEnded] = []


async def notify_ended(token_hashes: list[str]) -> None:
    """Run every `ended_hooks` callback; a failing hook is logged, never raised into the sign-out."""
    if not token_hashes:
        return
    for hook in list(ended_hooks):
        try:
            await hook(token_hashes)
        except Exception:
            log.exception("purging the state of ended sessions failed")


@dataclass(frozen=True)
class Principal:
    """The signed-in user behind a session, as every event and request sees it."""

    user_id: int
    session_id: int
    role: Role
    email: str
    display_name: str
    provider: str
    language: str
    theme: str
    seen_at: datetime | None = None  # when the session was last marked as used (idle timeout)

    @property
    def is_admin(self) -> bool:
        """Admins run the instance."""
        return self.role == Role.admin

    @property
    def is_active(self) -> bool:
        """Pending users may sign in but not chat until an admin approves them."""
        return self.role in (Role.admin, Role.user)


def hash_token(token: str) -> str:
    """SHA-256 of a session token (a leaked table does not leak usable cookies)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_from_cookie_header(header: str) -> str | None:
    """The session token in a raw Cookie header, if any."""
    if not header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE_NAME)
    value = morsel.value if morsel else ""
    return value if 20 <= len(value) <= 100 else None


async def create(
    *, session: AsyncSession, user_id: int, lifetime: timedelta, ip: str = "", user_agent: str = ""
) -> str:
    """Open a session for the user; return the token for the cookie (shown once, stored hashed)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        AuthSession(
            user_id=user_id,
            token_hash=hash_token(token),
            expires_at=utcnow() + lifetime,
            ip=ip[:64],
            user_agent=user_agent[:300],
        )
    )
    await session.flush()
    return token


async def resolve(*, session: AsyncSession, token: str, idle: timedelta | None = None) -> Principal | None:
    """The principal of a live (not revoked, not expired, not idle longer than `idle`) session, else None."""
    return await resolve_hash(session=session, token_hash=hash_token(token), idle=idle)


async def resolve_hash(*, session: AsyncSession, token_hash: str, idle: timedelta | None = None) -> Principal | None:
    """The principal of a live session given the SHA-256 of its token (what a tab's state keeps)."""
    stmt = (
        select(AuthSession, User)
        .join(User, col(User.id) == AuthSession.user_id)
        .where(AuthSession.token_hash == token_hash, col(AuthSession.revoked_at).is_(None))
        .where(AuthSession.expires_at > utcnow())
    )
    if idle is not None:
        last_use = func.coalesce(col(AuthSession.last_seen_at), col(AuthSession.created_at))
        stmt = stmt.where(last_use > utcnow() - idle)
    row = (await session.exec(stmt)).first()
    if row is None:
        return None
    auth, user = row
    assert auth.id is not None and user.id is not None
    return Principal(
        user_id=user.id,
        session_id=auth.id,
        role=Role(user.role),
        email=user.email or "",
        display_name=user.display_name,
        provider=user.provider,
        language=user.language,
        theme=user.theme,
        seen_at=auth.last_seen_at or auth.created_at,
    )


async def touch(*, session: AsyncSession, session_id: int) -> None:
    """Mark a session as used now (for the idle timeout)."""
    stmt = update(AuthSession).where(col(AuthSession.id) == session_id).values(last_seen_at=utcnow())
    await session.exec(stmt)  # type: ignore[call-overload]


async def revoke(*, session: AsyncSession, token: str) -> int | None:
    """End one session; return its user's id (None when there was no live session)."""
    auth = (
        await session.exec(
            select(AuthSession).where(
                AuthSession.token_hash == hash_token(token), col(AuthSession.revoked_at).is_(None)
            )
        )
    ).first()
    if auth is None:
        return None
    auth.revoked_at = utcnow()
    session.add(auth)
    await notify_ended([auth.token_hash])
    return auth.user_id


async def live_hashes(*, session: AsyncSession, user_id: int, except_id: int | None = None) -> list[str]:
    """Token hashes of the user's unrevoked sessions (to purge what their tabs keep)."""
    stmt = select(AuthSession.token_hash).where(
        col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None)
    )
    if except_id is not None:
        stmt = stmt.where(col(AuthSession.id) != except_id)
    return list((await session.exec(stmt)).all())


async def revoke_all(*, session: AsyncSession, user_id: int, keep_session_id: int | None = None) -> int:
    """End every live session of the user (but `keep_session_id`); return how many."""
    await notify_ended(await live_hashes(session=session, user_id=user_id, except_id=keep_session_id))
    stmt = update(AuthSession).where(col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None))
    if keep_session_id is not None:
        stmt = stmt.where(col(AuthSession.id) != keep_session_id)
    result = await session.exec(stmt.values(revoked_at=utcnow()))  # type: ignore[call-overload]
    return int(result.rowcount or 0)


def _live(user_id: int) -> list[Any]:
    """The conditions of the user's live sessions."""
    return [
        col(AuthSession.user_id) == user_id,
        col(AuthSession.revoked_at).is_(None),
        col(AuthSession.expires_at) > utcnow(),
    ]


async def list_active(*, session: AsyncSession, user_id: int) -> list[AuthSession]:
    """The user's live sessions (devices), the most recently used first."""
    last_use = func.coalesce(col(AuthSession.last_seen_at), col(AuthSession.created_at))
    stmt = select(AuthSession).where(*_live(user_id)).order_by(last_use.desc(), col(AuthSession.id).desc())
    return list((await session.exec(stmt)).all())


async def revoke_by_id(*, session: AsyncSession, user_id: int, session_id: int) -> bool:
    """End one of the user's live sessions by its id (another user's, or an ended one: False); the tabs
    it signed in are purged at once (`notify_ended`)."""
    auth = (await session.exec(select(AuthSession).where(AuthSession.id == session_id, *_live(user_id)))).first()
    if auth is None:
        return False
    auth.revoked_at = utcnow()
    session.add(auth)
    await session.flush()
    await notify_ended([auth.token_hash])
    return True


async def count_active(*, session: AsyncSession, user_id: int) -> int:
    """How many live sessions (devices) the user has."""
    stmt = select(func.count()).where(
        AuthSession.user_id == user_id, col(AuthSession.revoked_at).is_(None), AuthSession.expires_at > utcnow()
    )
    return int((await session.exec(stmt)).one())


class PrincipalCache:
    """Resolved sessions kept for `ttl` seconds, so an event does not cost a query; dropped on any change."""

    def __init__(self, ttl: float = 2.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._items: dict[str, tuple[float, Principal | None]] = {}

    def get(self, token: str) -> tuple[bool, Principal | None]:
        """(hit, principal); a miss when absent or stale."""
        return self.get_hash(hash_token(token))

    def get_hash(self, token_hash: str) -> tuple[bool, Principal | None]:
        """(hit, principal) by the token's hash."""
        item = self._items.get(token_hash)
        if item is None or time.monotonic() - item[0] > self.ttl:
            return False, None
        return True, item[1]

    def put(self, token: str, principal: Principal | None) -> None:
        """Remember a lookup (also a failed one: a replayed dead cookie costs nothing)."""
        self.put_hash(hash_token(token), principal)

    def put_hash(self, token_hash: str, principal: Principal | None) -> None:
        """Remember a lookup by the token's hash."""
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[token_hash] = (time.monotonic(), principal)

    def forget_user(self, user_id: int) -> None:
        """Drop every cached session of a user (sign-out, role or profile change, deletion)."""
        self._items = {k: v for k, v in self._items.items() if v[1] is None or v[1].user_id != user_id}

    def forget_token(self, token: str) -> None:
        """Drop one cached session."""
        self._items.pop(hash_token(token), None)
