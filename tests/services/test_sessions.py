"""Sign-in sessions on real SQLite and PostgreSQL: the cookie token, its hash, expiry and revocation."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from rubin_app.models import AuthSession, Role
from rubin_app.services import sessions
from rubin_app.services.sessions import Principal, PrincipalCache
from tests.factories import make_account

HOUR = timedelta(hours=1)


@pytest.fixture
async def user_id(db_scope) -> int:
    async with db_scope() as s:
        user = await make_account(s, email="anna@example.com", display_name="Анна", role=Role.admin)
    assert user.id is not None
    return user.id


async def open_session(db_scope, user_id: int, lifetime: timedelta = HOUR, **fields: str) -> str:
    async with db_scope() as s:
        return await sessions.create(session=s, user_id=user_id, lifetime=lifetime, **fields)


async def resolve(db_scope, token: str) -> Principal | None:
    async with db_scope() as s:
        return await sessions.resolve(session=s, token=token)


async def test_a_session_names_its_user(db_scope, user_id: int) -> None:
    """The cookie's token leads back to the user, with what the app needs to know about them."""
    token = await open_session(db_scope, user_id, ip="203.0.113.9", user_agent="Firefox " + "x" * 400)
    principal = await resolve(db_scope, token)
    assert principal is not None
    assert (principal.user_id, principal.email, principal.display_name) == (user_id, "anna@example.com", "Анна")
    assert principal.is_admin and principal.is_active
    async with db_scope() as s:
        row = (await s.exec(select(AuthSession))).one()
    assert (row.ip, len(row.user_agent)) == ("203.0.113.9", 300)
    assert principal.session_id == row.id


async def test_only_the_tokens_hash_is_stored(db_scope, user_id: int) -> None:
    """A copy of the sessions table does not contain a usable cookie."""
    token = await open_session(db_scope, user_id)
    assert len(token) >= 40
    async with db_scope() as s:
        rows = (await s.exec(select(AuthSession))).all()
    assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in repr([r.model_dump() for r in rows])
    assert await resolve(db_scope, rows[0].token_hash) is None  # the hash itself is not a token


async def test_unknown_and_expired_tokens_are_refused(db_scope, user_id: int) -> None:
    """A made-up token, or a session past its lifetime, signs nobody in and is not counted as a device."""
    expired = await open_session(db_scope, user_id, lifetime=timedelta(seconds=-1))
    live = await open_session(db_scope, user_id)
    assert await resolve(db_scope, expired) is None
    assert await resolve(db_scope, "x" * 43) is None
    assert await resolve(db_scope, live) is not None
    async with db_scope() as s:
        assert await sessions.count_active(session=s, user_id=user_id) == 1


async def test_revoke_one_session(db_scope, user_id: int) -> None:
    """Signing out ends this browser's session only, once."""
    here, there = await open_session(db_scope, user_id), await open_session(db_scope, user_id)
    async with db_scope() as s:
        assert await sessions.revoke(session=s, token=here) == user_id
    async with db_scope() as s:
        assert await sessions.revoke(session=s, token=here) is None  # already ended
        assert await sessions.revoke(session=s, token="never-issued-token-value") is None
    assert await resolve(db_scope, here) is None
    assert await resolve(db_scope, there) is not None


async def test_revoke_all_keeps_the_current_one_when_asked(db_scope, user_id: int) -> None:
    """Signing out other devices keeps this one; "sign out everywhere" ends all; other users are untouched."""
    async with db_scope() as s:
        other = await make_account(s, email="other@example.com")
    assert other.id is not None
    other_token = await open_session(db_scope, other.id)
    tokens = [await open_session(db_scope, user_id) for _ in range(3)]
    current = await resolve(db_scope, tokens[0])
    assert current is not None

    async with db_scope() as s:
        assert await sessions.revoke_all(session=s, user_id=user_id, keep_session_id=current.session_id) == 2
    assert [await resolve(db_scope, t) is not None for t in tokens] == [True, False, False]

    async with db_scope() as s:
        assert await sessions.revoke_all(session=s, user_id=user_id) == 1
        assert await sessions.count_active(session=s, user_id=user_id) == 0
    assert await resolve(db_scope, tokens[0]) is None
    assert await resolve(db_scope, other_token) is not None


async def test_role_changes_show_at_once(db_scope, user_id: int) -> None:
    """The principal is read fresh: a pending user is not active, and approval is seen on the next lookup."""
    async with db_scope() as s:
        waiting = await make_account(s, email="wait@example.com", role=Role.pending)
    assert waiting.id is not None
    token = await open_session(db_scope, waiting.id)
    principal = await resolve(db_scope, token)
    assert principal is not None and not principal.is_active and not principal.is_admin
    async with db_scope() as s:
        row = await s.get(type(waiting), waiting.id)
        assert row is not None
        row.role = Role.user
        s.add(row)
    principal = await resolve(db_scope, token)
    assert principal is not None and principal.is_active


@pytest.mark.parametrize(
    ("header", "found"),
    [
        ("rubin_session=" + "a" * 43, "a" * 43),
        ("theme=dark; rubin_session=" + "b" * 43 + "; other=1", "b" * 43),
        ("rubin_session=short", None),
        ("rubin_session=" + "c" * 101, None),
        ("other=" + "d" * 43, None),
        ("", None),
        ('rubin_session="unterminated', None),
    ],
)
def test_token_from_cookie_header(header: str, found: str | None) -> None:
    """The websocket reads the token from the raw Cookie header; junk gives no token."""
    assert sessions.token_from_cookie_header(header) == found


def principal(user_id: int) -> Principal:
    return Principal(
        user_id=user_id, session_id=user_id, role=Role.user, email=f"{user_id}@x.io", display_name="", provider="local",
        language="", theme="",
    )  # fmt: skip


def test_principal_cache_expires_and_forgets() -> None:
    """Looked-up sessions are remembered briefly, and forgotten at once on sign-out or account changes."""
    alice, bob = principal(1), principal(2)
    cache = PrincipalCache(ttl=0.2)
    cache.put("alice-token-1", alice)
    cache.put("alice-token-2", alice)
    cache.put("bob-token", bob)
    cache.put("dead-token", None)
    assert cache.get("alice-token-1") == (True, alice)
    assert cache.get("dead-token") == (True, None)  # a failed lookup is remembered too
    assert cache.get("never-seen") == (False, None)

    cache.forget_user(1)
    assert cache.get("alice-token-1") == (False, None) and cache.get("alice-token-2") == (False, None)
    assert cache.get("bob-token") == (True, bob)
    cache.forget_token("bob-token")
    assert cache.get("bob-token") == (False, None)

    cache.put("bob-token", bob)
    time.sleep(0.25)
    assert cache.get("bob-token") == (False, None)


def test_principal_cache_is_bounded() -> None:
    cache = PrincipalCache(ttl=60, size=3)
    for i in range(3):
        cache.put(f"token-{i}", None)
    cache.put("token-3", None)
    assert cache.get("token-3") == (True, None)
    assert sum(cache.get(f"token-{i}")[0] for i in range(3)) == 0


async def test_an_idle_session_ends_and_a_used_one_lives_on(db_scope, user_id: int) -> None:
    """SESSION_IDLE_MINUTES: a session unused for longer is dead; using it keeps it alive."""
    idle = timedelta(minutes=30)
    token = await open_session(db_scope, user_id, lifetime=timedelta(days=30))
    async with db_scope() as s:
        assert await sessions.resolve(session=s, token=token, idle=idle) is not None  # just created
        row = (await s.exec(select(AuthSession))).one()
        row.created_at = row.created_at - timedelta(minutes=31)
        s.add(row)
    async with db_scope() as s:
        assert await sessions.resolve(session=s, token=token, idle=idle) is None  # 31 minutes unused
        assert await sessions.resolve(session=s, token=token) is not None  # no idle timeout: still valid
        assert row.id is not None
        await sessions.touch(session=s, session_id=row.id)
    async with db_scope() as s:
        principal = await sessions.resolve(session=s, token=token, idle=idle)
    assert principal is not None and principal.seen_at is not None


async def test_the_runtime_signs_out_an_idle_session_and_keeps_a_used_one(make_runtime, db_scope, user_id: int) -> None:
    """With SESSION_IDLE_MINUTES set, a session used now is remembered as used; one left idle is refused."""
    rt = await make_runtime(session_idle_minutes=30)
    used = await open_session(db_scope, user_id)
    idle = await open_session(db_scope, user_id)
    async with db_scope() as s:
        for row in (await s.exec(select(AuthSession))).all():
            row.created_at = row.created_at - timedelta(minutes=20)  # both 20 minutes old, never touched
            s.add(row)
    assert await rt.principal(used) is not None
    for _ in range(100):  # the last use is written off the request's path
        async with db_scope() as s:
            rows = {r.token_hash: r for r in (await s.exec(select(AuthSession))).all()}
        if rows[sessions.hash_token(used)].last_seen_at is not None:
            break
        await asyncio.sleep(0.02)
    assert rows[sessions.hash_token(used)].last_seen_at is not None
    async with db_scope() as s:  # 15 more idle minutes for both: 35 for the idle one, 15 for the used one
        for row in (await s.exec(select(AuthSession))).all():
            row.created_at = row.created_at - timedelta(minutes=15)
            if row.last_seen_at is not None:
                row.last_seen_at = row.last_seen_at - timedelta(minutes=15)
            s.add(row)
    rt.principals = PrincipalCache()
    assert await rt.principal(used) is not None
    assert await rt.principal(idle) is None
