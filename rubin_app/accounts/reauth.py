"""Re-authentication for the most dangerous admin actions (deleting a user, changing a role, rotating keys).

An admin confirms who they are — by re-entering their password, or for a provider account by signing in again
at the provider (`prompt=login`) — and the sign-in session remembers when (`auth_sessions.reauth_at`). For
`WINDOW` after that, the dangerous actions of that session (that browser only) go through; after it, the
service refuses them with `reauth_required`. The check is here, in the service layer, whatever the door.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.models import AuthSession, User
from rubin_app.services import audit, credentials, login_guard
from rubin_app.services.chats import InputError

WINDOW = timedelta(minutes=5)
REAUTHENTICATED = "reauthenticated"


async def is_recent(*, session: AsyncSession, user_id: int, session_id: int | None) -> bool:
    """Whether this sign-in session of the user re-authenticated within WINDOW."""
    if session_id is None:
        return False
    row = await session.get(AuthSession, session_id)
    if row is None or row.user_id != user_id or row.revoked_at is not None or row.reauth_at is None:
        return False
    return utcnow() - row.reauth_at <= WINDOW


async def require_recent(*, session: AsyncSession, user_id: int, session_id: int | None) -> None:
    """Refuse (`reauth_required`) unless this session of the user re-authenticated within WINDOW."""
    if not await is_recent(session=session, user_id=user_id, session_id=session_id):
        raise InputError("reauth_required", minutes=int(WINDOW.total_seconds() // 60))


async def mark(*, session: AsyncSession, user_id: int, session_id: int, how: str, ip: str = "") -> None:
    """Record a re-authentication of this session now (and audit it)."""
    await session.exec(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.user_id) == user_id)
        .values(reauth_at=utcnow())
    )
    user = await session.get(User, user_id)
    await audit.record(
        session=session, action=REAUTHENTICATED, user_id=user_id, actor_id=user_id,
        email=user.email if user else None, ip=ip, detail=how,
    )  # fmt: skip


async def confirm_password(
    *, session: AsyncSession, settings: Settings, user_id: int, session_id: int, password: str, ip: str = ""
) -> None:
    """Check the user's password again; right: the session is re-authenticated; wrong: `wrong_password`.

    Each check counts towards the account's lockout like a sign-in (the session is its own source, as for a
    password change), so this cannot be used to guess the password. Commits the session."""
    user = await session.get(User, user_id)
    if user is None or user.provider != "local" or not user.password_hash:
        raise InputError("not_local_account")
    attempt = await login_guard.reserve(
        session=session, limits=login_guard.Limits.of(settings), kind=login_guard.PASSWORD, email=user.email or "",
        ip=ip, source=f"session:{session_id}", known=True,
    )  # fmt: skip
    ok = await asyncio.to_thread(credentials.verify_hash, user.password_hash, password[:1024])
    await login_guard.settle(session=session, attempt_id=attempt, ok=ok)
    if ok:
        await mark(session=session, user_id=user_id, session_id=session_id, how="password", ip=ip)
    else:
        await audit.record(
            session=session, action=REAUTHENTICATED, ok=False, user_id=user_id, actor_id=user_id,
            email=user.email, ip=ip, detail="wrong password",
        )  # fmt: skip
    await session.commit()
    if not ok:
        raise InputError("wrong_password")
