"""The account page's sessions list on real SQLite and PostgreSQL: a user sees and ends only their own live
sessions (another user's session id is refused and stays live), the ended one stops resolving at once and
its tabs are purged; the device is named from the stored user agent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rubin_app.models import Role
from rubin_app.services import devices, sessions
from tests.factories import make_account

HOUR = timedelta(hours=1)
CHROME_LINUX = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
async def two_users(db_scope) -> tuple[int, int]:
    async with db_scope() as s:
        anna = await make_account(s, email="anna@example.com", role=Role.admin)
        boris = await make_account(s, email="boris@example.com")
    assert anna.id is not None and boris.id is not None
    return anna.id, boris.id


async def _open(db_scope, user_id: int, user_agent: str = "", lifetime: timedelta = HOUR) -> str:
    async with db_scope() as s:
        return await sessions.create(
            session=s, user_id=user_id, lifetime=lifetime, ip="203.0.113.5", user_agent=user_agent
        )


async def test_a_user_lists_only_their_own_live_sessions(db_scope, two_users) -> None:
    """Anna's two browsers are listed, newest use first; Boris's session, an expired and a revoked one are not."""
    anna, boris = two_users
    laptop = await _open(db_scope, anna, CHROME_LINUX)
    phone = await _open(db_scope, anna, SAFARI_IPHONE)
    await _open(db_scope, anna, CHROME_LINUX, lifetime=timedelta(seconds=-1))
    gone = await _open(db_scope, anna)
    await _open(db_scope, boris, CHROME_LINUX)
    async with db_scope() as s:
        await sessions.revoke(session=s, token=gone)
        live = await sessions.resolve(session=s, token=laptop)
        assert live is not None
        await sessions.touch(session=s, session_id=live.session_id)  # the laptop was used last
    async with db_scope() as s:
        rows = await sessions.list_active(session=s, user_id=anna)
    assert [r.token_hash for r in rows] == [sessions.hash_token(laptop), sessions.hash_token(phone)]
    assert [devices.describe(r.user_agent) for r in rows] == ["Chrome 131 · Linux", "Mobile Safari 17 · iOS · iPhone"]
    assert {r.ip for r in rows} == {"203.0.113.5"}


async def test_ending_one_session_signs_that_browser_out_at_once(db_scope, two_users) -> None:
    """Anna ends her phone's session: it no longer resolves, its tabs are purged, her laptop stays signed in."""
    anna, _ = two_users
    laptop, phone = await _open(db_scope, anna), await _open(db_scope, anna)
    purged: list[list[str]] = []

    async def hook(hashes: list[str]) -> None:
        purged.append(hashes)

    sessions.ended_hooks.append(hook)
    try:
        async with db_scope() as s:
            target = await sessions.resolve(session=s, token=phone)
            assert target is not None
            assert await sessions.revoke_by_id(session=s, user_id=anna, session_id=target.session_id)
    finally:
        sessions.ended_hooks.remove(hook)
    assert purged == [[sessions.hash_token(phone)]]
    async with db_scope() as s:
        assert await sessions.resolve(session=s, token=phone) is None
        assert await sessions.resolve(session=s, token=laptop) is not None
        assert not await sessions.revoke_by_id(session=s, user_id=anna, session_id=target.session_id)  # once


async def test_another_users_session_id_is_refused(db_scope, two_users) -> None:
    """Boris cannot end Anna's session by its id (nor a made-up id): refused, and hers stays live."""
    anna, boris = two_users
    token = await _open(db_scope, anna)
    async with db_scope() as s:
        principal = await sessions.resolve(session=s, token=token)
        assert principal is not None
        assert not await sessions.revoke_by_id(session=s, user_id=boris, session_id=principal.session_id)
        assert not await sessions.revoke_by_id(session=s, user_id=boris, session_id=987654)
    async with db_scope() as s:
        assert await sessions.resolve(session=s, token=token) is not None
        assert len(await sessions.list_active(session=s, user_id=boris)) == 0


async def test_ending_all_others_keeps_this_one(db_scope, two_users) -> None:
    """The "sign out all other devices" button ends every session of the user but the current one."""
    anna, boris = two_users
    here, there, elsewhere = [await _open(db_scope, anna) for _ in range(3)]
    theirs = await _open(db_scope, boris)
    async with db_scope() as s:
        current = await sessions.resolve(session=s, token=here)
        assert current is not None
        assert await sessions.revoke_all(session=s, user_id=anna, keep_session_id=current.session_id) == 2
    async with db_scope() as s:
        assert [r.id for r in await sessions.list_active(session=s, user_id=anna)] == [current.session_id]
        assert await sessions.resolve(session=s, token=there) is None
        assert await sessions.resolve(session=s, token=elsewhere) is None
        assert await sessions.resolve(session=s, token=theirs) is not None


def test_a_device_without_a_user_agent_has_no_name() -> None:
    """No stored user agent (or an unknown one): the page says "Unknown device" instead."""
    assert devices.describe("") == ""
    assert devices.describe("   ") == ""
    assert devices.describe("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0").startswith("Firefox 128")
