"""The audit trail on real SQLite and PostgreSQL (the lockouts it used to drive: test_login_guard.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlmodel import select

from rubin_app.models import AuditEvent
from rubin_app.services import accounts, audit
from rubin_app.services.chats import InputError
from tests.factories import make_account, make_audit_event

PASSWORD = "correct horse battery"
WINDOW = timedelta(minutes=15)
FAILED = audit.SIGN_IN_FAILED


async def try_sign_in(db_scope, settings, email: str, password: str, ip: str = "198.51.100.1") -> str:
    """ "ok", or the error code the login page would show (with its minutes for a lockout)."""
    try:
        async with db_scope() as s:
            await accounts.sign_in_local(session=s, settings=settings, email=email, password=password, ip=ip)
    except InputError as exc:
        return f"{exc.code}:{exc.params['minutes']}" if exc.code == "locked_out" else exc.code
    return "ok"


@pytest.fixture
async def account(db_scope) -> str:
    async with db_scope() as s:
        await make_account(s, email="user@example.com", password=PASSWORD)
    return "user@example.com"


async def test_record_and_list(db_scope, caplog: pytest.LogCaptureFixture) -> None:
    """Events are kept newest first, long fields are cut, and the log line carries no secrets."""
    caplog.set_level(logging.INFO, logger="rubin_app.audit")
    async with db_scope() as s:
        await audit.record(session=s, action=audit.SIGN_UP, user_id=1, email="a@example.com", ip="1" * 100)
        await audit.record(
            session=s, action=audit.ROLE_CHANGED, user_id=1, actor_id=2, detail="user->admin " + "x" * 600
        )
    async with db_scope() as s:
        events = await audit.list_events(session=s)
    assert [e.action for e in events] == ["role_changed", "sign_up"]
    assert len(events[0].detail) == 500 and events[0].actor_id == 2
    assert len(events[1].ip) == 64
    assert "action=sign_up" in caplog.text and "email=a@example.com" in caplog.text


async def test_failed_sign_in_is_recorded_without_the_password(db_scope, make_settings, account: str, caplog) -> None:
    caplog.set_level(logging.INFO, logger="rubin_app.audit")
    await try_sign_in(db_scope, make_settings(), account, "my-secret-guess-42")
    async with db_scope() as s:
        rows = (await s.exec(select(AuditEvent))).all()
    assert [(r.action, r.ok, r.email, r.ip) for r in rows] == [("sign_in_failed", False, account, "198.51.100.1")]
    assert rows[0].user_id is not None
    assert "my-secret-guess-42" not in caplog.text + repr([r.model_dump() for r in rows])


async def test_list_filters_and_pages(db_scope) -> None:
    """The admin view pages through the log and filters by action, email/IP text and failures."""
    async with db_scope() as s:
        for i in range(30):
            await make_audit_event(s, action=audit.PROVIDER_FAILED, ip=f"203.0.113.{i}")
        await make_audit_event(s, action=audit.SIGN_IN, ok=True, email="Ada@Example.com", ip="192.0.2.7")
        await make_audit_event(s, action=FAILED, email="bob@example.com", ip="192.0.2.8")
        await make_audit_event(s, action=FAILED, email="100%_real@example.com", ip="192.0.2.9")

    async def page(**filters) -> list[tuple[str, str | None, str]]:
        async with db_scope() as s:
            return [(e.action, e.email, e.ip) for e in await audit.list_events(session=s, **filters)]

    newest = await page(limit=10)
    assert len(newest) == 10 and newest[0][1] == "100%_real@example.com"
    older = await page(limit=10, offset=10)
    assert len(older) == 10 and not set(older) & set(newest)
    assert len(await page(limit=10, offset=30)) == 3
    assert await page(action=audit.SIGN_IN) == [("sign_in", "Ada@Example.com", "192.0.2.7")]
    assert [e[1] for e in await page(text="ADA@")] == ["Ada@Example.com"]  # any case
    assert [e[2] for e in await page(text="192.0.2.8")] == ["192.0.2.8"]
    assert [e[1] for e in await page(text="100%_")] == ["100%_real@example.com"]  # % and _ are literal
    assert await page(text="%") == [(FAILED, "100%_real@example.com", "192.0.2.9")]
    failures = await page(failures_only=True, limit=500)
    assert len(failures) == 32 and all(a != audit.SIGN_IN for a, _, _ in failures)
    assert await page(failures_only=True, text="example.com") == [
        (FAILED, "100%_real@example.com", "192.0.2.9"), (FAILED, "bob@example.com", "192.0.2.8"),
    ]  # fmt: skip
    async with db_scope() as s:
        assert await audit.list_actions(session=s) == sorted({audit.PROVIDER_FAILED, audit.SIGN_IN, FAILED})
