"""Re-authentication before the most dangerous admin actions (issue #13), on SQLite and PostgreSQL: the service
refuses deleting a user or changing a role unless this sign-in session re-entered the password in the last
5 minutes; approving a pending user does not ask; wrong passwords are audited and count towards lockouts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from rubin_app.accounts import reauth
from rubin_app.models import AuditEvent, AuthSession, Role, User
from rubin_app.models.user import utcnow
from rubin_app.services import accounts, sessions
from rubin_app.services.chats import InputError
from tests.factories import make_account

PASSWORD = "correct horse battery"


async def _session_of(db_scope: Callable[[], Any], user_id: int) -> int:
    """A new sign-in session of the user; its id."""
    async with db_scope() as s:
        token = await sessions.create(session=s, user_id=user_id, lifetime=timedelta(hours=1))
        principal = await sessions.resolve(session=s, token=token)
    assert principal is not None
    return principal.session_id


async def _expect(db_scope: Callable[[], Any], code: str, action: Callable[[Any], Any]) -> None:
    with pytest.raises(InputError) as info:
        async with db_scope() as s:
            await action(s)
    assert info.value.code == code


async def test_dangerous_admin_actions_need_the_password_again(db_scope, make_settings) -> None:
    settings = make_settings()
    async with db_scope() as s:
        admin = await make_account(s, email="admin@example.com", role=Role.admin, password=PASSWORD)
        victim = await make_account(s, email="victim@example.com")
        waiting = await make_account(s, email="waiting@example.com", role=Role.pending)
    assert admin.id and victim.id and waiting.id
    here, elsewhere = await _session_of(db_scope, admin.id), await _session_of(db_scope, admin.id)

    def delete(session_id: int | None) -> Callable[[Any], Any]:
        return lambda s: accounts.delete_account(
            session=s, user_id=victim.id, actor_id=admin.id, actor_session_id=session_id
        )

    def promote(session_id: int | None) -> Callable[[Any], Any]:
        return lambda s: accounts.set_role(
            session=s, actor_id=admin.id, user_id=victim.id, role="admin", actor_session_id=session_id
        )

    for action in (delete(None), delete(here), promote(here)):
        await _expect(db_scope, "reauth_required", action)
    async with db_scope() as s:  # approving a waiting account is not dangerous: no password asked
        await accounts.set_role(session=s, actor_id=admin.id, user_id=waiting.id, role="user")

    def confirm(password: str, session_id: int = here) -> Callable[[Any], Any]:
        return lambda s: reauth.confirm_password(
            session=s, settings=settings, user_id=admin.id, session_id=session_id, password=password, ip="10.0.0.1"
        )

    await _expect(db_scope, "wrong_password", confirm("not my password"))
    await _expect(db_scope, "reauth_required", delete(here))
    async with db_scope() as s:
        await confirm(PASSWORD)(s)
    await _expect(db_scope, "reauth_required", delete(elsewhere))  # another browser of the same admin: not
    async with db_scope() as s:
        await promote(here)(s)
        await accounts.set_role(
            session=s, actor_id=admin.id, user_id=victim.id, role="user", actor_session_id=here
        )  # and back
    async with db_scope() as s:  # six minutes later the confirmation has run out
        stmt = update(AuthSession).where(col(AuthSession.id) == here).values(reauth_at=utcnow() - timedelta(minutes=6))
        await s.exec(stmt)  # type: ignore[call-overload]
    await _expect(db_scope, "reauth_required", delete(here))
    async with db_scope() as s:
        await confirm(PASSWORD)(s)
    async with db_scope() as s:
        await delete(here)(s)
        assert await s.get(User, victim.id) is None
        rows = (await s.exec(select(AuditEvent).where(AuditEvent.action == "reauthenticated"))).all()
    assert [(e.ok, e.ip, e.user_id) for e in rows] == [
        (False, "10.0.0.1", admin.id), (True, "10.0.0.1", admin.id), (True, "10.0.0.1", admin.id)
    ]  # fmt: skip
    assert all(PASSWORD not in e.detail for e in rows)


async def test_a_session_of_someone_else_or_a_provider_account_cannot_confirm(db_scope, make_settings) -> None:
    settings = make_settings()
    async with db_scope() as s:
        admin = await make_account(s, email="admin@example.com", role=Role.admin, password=PASSWORD)
        other = await make_account(s, email="other@example.com", role=Role.admin, password=PASSWORD)
        oidc = await make_account(s, email="sso@example.com", role=Role.admin, provider="kc")
    assert admin.id and other.id and oidc.id
    others_session = await _session_of(db_scope, other.id)
    async with db_scope() as s:  # a re-authenticated session of another admin does not count for this one
        await reauth.mark(session=s, user_id=other.id, session_id=others_session, how="test")
        assert not await reauth.is_recent(session=s, user_id=admin.id, session_id=others_session)
    sso_session = await _session_of(db_scope, oidc.id)
    await _expect(
        db_scope, "not_local_account",
        lambda s: reauth.confirm_password(
            session=s, settings=settings, user_id=oidc.id, session_id=sso_session, password=PASSWORD
        ),
    )  # fmt: skip
