"""Sign-in throttles on real SQLite and PostgreSQL: parallel guesses, pair locks, delays, known devices, sign-up."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, func, select

from rubin_app.models import AuditEvent, LoginAttempt, User
from rubin_app.services import accounts, login_guard, sessions
from rubin_app.services.chats import InputError

PASSWORD = "correct horse battery"
EMAIL = "victim@example.com"
KEY = "k" * 64  # the runtime's secret key in the app


async def sign_up(db_scope, settings, email: str = EMAIL, ip: str = "") -> User:
    async with db_scope() as s:
        return await accounts.sign_up_local(session=s, settings=settings, email=email, password=PASSWORD, ip=ip)


async def sign_in(db_scope, settings, password: str, ip: str, email: str = EMAIL, device: str = "") -> str:
    """Try to sign in: "ok", or the error code (with its wait, e.g. "locked_out:15m" / "slow_down:1s")."""
    try:
        async with db_scope() as s:
            await accounts.sign_in_local(
                session=s, settings=settings, email=email, password=password, ip=ip, device_cookie=device,
                device_key=KEY,
            )  # fmt: skip
    except InputError as exc:
        if "minutes" in exc.params:
            return f"{exc.code}:{exc.params['minutes']}m"
        if "seconds" in exc.params:
            return f"{exc.code}:{exc.params['seconds']}s"
        return exc.code
    return "ok"


async def checked(db_scope) -> dict[str, int]:
    """Settled password checks by outcome (each one ran Argon2), and the audited failures."""
    async with db_scope() as s:
        rows = (await s.exec(select(LoginAttempt.status, func.count()).group_by(col(LoginAttempt.status)))).all()
        audited = (await s.exec(select(func.count()).where(AuditEvent.action == "sign_in_failed"))).one()
    return {**{status: int(n) for status, n in rows}, "audited_failures": int(audited)}


def aware(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def reserved(db_scope) -> int:
    async with db_scope() as s:
        return int((await s.exec(select(func.count()).select_from(LoginAttempt))).one())


async def after_reservations(db_scope, count: int, timeout: float = 0.15) -> None:
    """Wait until `count` checks are reserved (or `timeout` passed: the code under test may not reserve)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await reserved(db_scope) >= count:
                return
        except Exception:  # no such table before the fix
            pass
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- concurrency (issue 11, item 2)


async def test_parallel_guesses_check_at_most_the_limit(db_scope, make_settings) -> None:
    """30 wrong passwords and the right one at once, default settings: at most 5 checked, the right one refused."""
    settings = make_settings()
    await sign_up(db_scope, settings)

    async def right_one() -> str:
        await after_reservations(db_scope, settings.login_max_failures)
        return await sign_in(db_scope, settings, PASSWORD, "203.0.113.9")

    wrong = [sign_in(db_scope, settings, f"guess number {i}", "203.0.113.9") for i in range(30)]
    *guesses, right = await asyncio.gather(*wrong, right_one())
    assert right.startswith(("locked_out", "slow_down")), right
    assert guesses.count("bad_credentials") <= settings.login_max_failures
    outcome = await checked(db_scope)
    assert outcome["audited_failures"] <= settings.login_max_failures  # Argon2 ran at most 5 times
    assert outcome.get("failed") == outcome["audited_failures"] and "ok" not in outcome and "pending" not in outcome


async def test_parallel_guesses_from_many_ips_wait_their_turn(db_scope, make_settings) -> None:
    """A botnet (every guess from its own IP): past 4 checks, each waits 2^n s after the previous failure."""
    settings = make_settings(login_max_failures=4)
    await sign_up(db_scope, settings)
    results = await asyncio.gather(*(sign_in(db_scope, settings, f"guess {i}", f"198.51.100.{i}") for i in range(24)))
    verified = results.count("bad_credentials")
    assert verified == (await checked(db_scope))["audited_failures"] <= 4 + 2  # the burst lasts < 4 s
    async with db_scope() as s:
        rows = (await s.exec(select(LoginAttempt).order_by(col(LoginAttempt.created_at)))).all()
    assert len(rows) == verified and all(r.status == "failed" for r in rows)
    for i in range(4, len(rows)):  # a check past the threshold only after its delay
        previous = max(aware(r.settled_at) for r in rows[:i])
        assert aware(rows[i].created_at) >= previous + timedelta(seconds=2 ** (i - 4))


async def test_parallel_guesses_from_one_ip_stop_at_the_ip_limit(db_scope, make_settings) -> None:
    """The per-IP threshold holds under concurrency too (30 accounts tried at once, 8 allowed)."""
    settings = make_settings(login_ip_max_failures=8)
    results = await asyncio.gather(
        *(sign_in(db_scope, settings, "a wrong password", "192.0.2.1", email=f"u{i}@example.com") for i in range(30))
    )
    assert results.count("bad_credentials") <= 8
    assert (await checked(db_scope))["audited_failures"] <= 8


# --------------------------------------------------------------------------- who gets locked (item 5)


async def test_a_locked_pair_does_not_lock_other_ips_out(db_scope, make_settings) -> None:
    """The attacker's IP is locked out of the account; the owner elsewhere only waits (1 s, then 2 s)."""
    settings = make_settings(login_max_failures=3, login_lockout_minutes=10)
    accounts._refusals_audited.clear()
    await sign_up(db_scope, settings)
    for i in range(3):
        assert await sign_in(db_scope, settings, f"guess {i}", "203.0.113.66") == "bad_credentials"
    assert await sign_in(db_scope, settings, PASSWORD, "203.0.113.66") == "locked_out:10m"  # a hard lock
    assert await sign_in(db_scope, settings, PASSWORD, "192.0.2.10") == "slow_down:1s"  # a delay, not a lock
    await asyncio.sleep(1.05)
    assert await sign_in(db_scope, settings, "one more guess", "198.51.100.1") == "bad_credentials"
    assert await sign_in(db_scope, settings, PASSWORD, "192.0.2.10") == "slow_down:2s"  # the delay doubles
    await asyncio.sleep(2.05)
    assert await sign_in(db_scope, settings, PASSWORD, "192.0.2.10") == "ok"
    assert await sign_in(db_scope, settings, PASSWORD, "203.0.113.66") == "locked_out:10m"  # still locked
    async with db_scope() as s:
        locked = (await s.exec(select(func.count()).where(AuditEvent.action == "locked_out"))).one()
    assert locked == 2  # one row per account and address a minute, however many refusals
    for _ in range(50):  # a flood of refused attempts does not flood the audit log
        assert (await sign_in(db_scope, settings, PASSWORD, "203.0.113.66")).startswith("locked_out")
    async with db_scope() as s:
        assert (await s.exec(select(func.count()).where(AuditEvent.action == "locked_out"))).one() == 2


async def test_ip_wide_failures_do_not_lock_out_a_known_device(db_scope, make_settings) -> None:
    """Behind one NAT an attacker sprays accounts and the victim's: the victim's known browser still gets in."""
    settings = make_settings(login_max_failures=3, login_ip_max_failures=5)
    user = await sign_up(db_scope, settings)
    assert user.id is not None
    device = login_guard.remember_device(KEY, "", user_id=user.id, email=EMAIL)
    nat = "203.0.113.1"
    for i in range(3):
        assert await sign_in(db_scope, settings, f"guess {i}", nat) == "bad_credentials"
    for i in range(2):
        assert await sign_in(db_scope, settings, PASSWORD, nat, email=f"someone{i}@example.com") == "bad_credentials"
    assert await sign_in(db_scope, settings, PASSWORD, nat) == "locked_out:15m"
    assert (await sign_in(db_scope, settings, PASSWORD, nat, email="other@example.com")).startswith("slow_down")
    assert await sign_in(db_scope, settings, PASSWORD, nat, device=device) == "ok"
    # A forged or another account's cookie is no known device.
    forged = device.rsplit(".", 1)[0] + ".0123456789abcdef0123456789abcdef"
    assert await sign_in(db_scope, settings, PASSWORD, nat, device=forged) == "locked_out:15m"
    stranger = login_guard.remember_device(KEY, "", user_id=user.id + 1, email="x@example.com")
    assert await sign_in(db_scope, settings, PASSWORD, nat, device=stranger) == "locked_out:15m"


async def test_a_known_device_has_its_own_pair_limit(db_scope, make_settings) -> None:
    """A stolen device cookie is no bypass: its own guesses lock it like an IP."""
    settings = make_settings(login_max_failures=2)
    user = await sign_up(db_scope, settings)
    assert user.id is not None
    device = login_guard.remember_device(KEY, "", user_id=user.id, email=EMAIL)
    ips = iter(f"198.51.100.{i}" for i in range(10))
    assert [await sign_in(db_scope, settings, "wrong one", next(ips), device=device) for _ in range(2)] == [
        "bad_credentials"
    ] * 2
    assert (await sign_in(db_scope, settings, PASSWORD, next(ips), device=device)).startswith("locked_out")


def test_device_cookie_keeps_accounts_and_refuses_tampering() -> None:
    """One browser remembers several accounts; the signature binds the account and the key."""
    cookie = login_guard.remember_device(KEY, "", user_id=1, email="a@example.com")
    device = login_guard.known_device(KEY, cookie, user_id=1, email="a@example.com")
    assert device and login_guard.remember_device(KEY, cookie, user_id=1, email="a@example.com") == cookie
    cookie = login_guard.remember_device(KEY, cookie, user_id=2, email="b@example.com")
    assert login_guard.known_device(KEY, cookie, user_id=1, email="a@example.com") == device
    assert login_guard.known_device(KEY, cookie, user_id=2, email="b@example.com")
    assert login_guard.known_device(KEY, cookie, user_id=1, email="new-owner@example.com") is None
    assert login_guard.known_device("another key" * 4, cookie, user_id=1, email="a@example.com") is None
    assert login_guard.known_device("", cookie, user_id=1, email="a@example.com") is None
    for uid in range(3, 10):
        cookie = login_guard.remember_device(KEY, cookie, user_id=uid, email=f"{uid}@example.com")
    assert len(cookie.split("~")) == login_guard.MAX_DEVICES


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.2, ("slow_down", "seconds", 1)),
        (59, ("slow_down", "seconds", 59)),
        (61, ("locked_out", "minutes", 2)),
        (900, ("locked_out", "minutes", 15)),
    ],
)
def test_refusal_says_when_to_try_again(seconds: float, shown: tuple[str, str, int]) -> None:
    error = login_guard.refusal(timedelta(seconds=seconds))
    assert (error.code, *error.params.items()) == (shown[0], (shown[1], shown[2]))


# --------------------------------------------------------------------------- the account page (item 9)


async def test_change_password_counts_toward_the_lockout(db_scope, make_settings) -> None:
    """Wrong current passwords on the account page are limited, and slow the account's sign-ins elsewhere."""
    settings = make_settings(login_max_failures=3)
    user = await sign_up(db_scope, settings)
    assert user.id is not None
    async with db_scope() as s:
        token = await sessions.create(session=s, user_id=user.id, lifetime=timedelta(hours=1))
        principal = await sessions.resolve(session=s, token=token)
    assert principal is not None

    async def change(current: str) -> str:
        try:
            async with db_scope() as s:
                await accounts.change_password(
                    session=s, settings=settings, user_id=user.id, current=current, new="a brand new phrase",
                    keep_session_id=principal.session_id, ip="192.0.2.5",
                )  # fmt: skip
        except InputError as exc:
            return exc.code
        return "ok"

    results = await asyncio.gather(*(change(f"guess {i}") for i in range(10)))
    assert results.count("wrong_password") <= 3 and set(results) <= {"wrong_password", "locked_out", "slow_down"}
    assert await change(PASSWORD) in ("locked_out", "slow_down")
    assert (await sign_in(db_scope, settings, PASSWORD, "198.51.100.20")).startswith("slow_down")  # counted


# --------------------------------------------------------------------------- sign-up (item 13)


async def test_sign_up_with_a_taken_email_is_neutral_and_tells_the_owner(db_scope, make_settings) -> None:
    """No "email taken": a neutral refusal, an audit row, and a notice for the owner's account page."""
    settings = make_settings()
    owner = await sign_up(db_scope, settings)
    assert owner.id is not None
    with pytest.raises(InputError) as info:
        await sign_up(db_scope, settings, "Victim@Example.com", ip="203.0.113.4")
    assert info.value.code == "signup_not_created" and "taken" not in str(info.value.params)
    async with db_scope() as s:
        assert (await s.exec(select(func.count()).select_from(User))).one() == 1
        count, last = await accounts.sign_up_attempts_notice(session=s, user_id=owner.id)
        events = (await s.exec(select(AuditEvent.action, AuditEvent.ip).where(AuditEvent.user_id == owner.id))).all()
    assert count == 1 and last is not None
    assert ("sign_up_taken", "203.0.113.4") in events


async def test_sign_ups_meeting_taken_emails_are_limited_per_ip(db_scope, make_settings) -> None:
    """An IP that keeps meeting taken emails pauses sign-up (any email, so the pause says nothing); others go on."""
    settings = make_settings(signup_ip_max_per_hour=2)
    await sign_up(db_scope, settings, "owner@example.com")
    for _ in range(2):
        with pytest.raises(InputError) as info:
            await sign_up(db_scope, settings, "owner@example.com", ip="203.0.113.8")
        assert info.value.code == "signup_not_created"
    for email in ("owner@example.com", "fresh@example.com"):
        with pytest.raises(InputError) as info:
            await sign_up(db_scope, settings, email, ip="203.0.113.8")
        assert (info.value.code, info.value.params) == ("signup_limited", {"minutes": 60})
    assert (await sign_up(db_scope, settings, "fresh@example.com", ip="192.0.2.8")).email == "fresh@example.com"
    for i in range(4):  # new accounts do not count: a team behind one NAT can all sign up
        await sign_up(db_scope, settings, f"teammate{i}@example.com", ip="192.0.2.8")


async def test_a_sign_up_that_fails_unexpectedly_does_not_count_against_the_ip(
    db_scope, make_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error or a cancelled request is not a taken email: the reservation is given back (the
    original error still reaches the caller), and the IP can sign up; taken emails are still limited."""
    settings = make_settings(signup_ip_max_per_hour=2)
    ip = "203.0.113.9"
    await sign_up(db_scope, settings, "owner@example.com")
    real_emit, started = accounts.webhook_events.emit, asyncio.Event()

    async def broken(*args, **kwargs) -> None:  # after the user row is flushed: the write lock is held
        raise RuntimeError("the database went away")

    async def stuck(*args, **kwargs) -> None:
        started.set()
        await asyncio.sleep(60)

    monkeypatch.setattr(accounts.webhook_events, "emit", broken)
    for i in range(3):
        with pytest.raises(RuntimeError, match="went away"):
            await sign_up(db_scope, settings, f"new{i}@example.com", ip=ip)
    monkeypatch.setattr(accounts.webhook_events, "emit", stuck)
    task = asyncio.create_task(sign_up(db_scope, settings, "cancelled@example.com", ip=ip))
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await reserved(db_scope) == 0
    monkeypatch.setattr(accounts.webhook_events, "emit", real_emit)
    for i in range(3):  # as many as the limit and more: none of the failures above counted
        assert (await sign_up(db_scope, settings, f"new{i}@example.com", ip=ip)).email == f"new{i}@example.com"
    for code in ("signup_not_created", "signup_not_created", "signup_limited"):
        with pytest.raises(InputError) as info:
            await sign_up(db_scope, settings, "owner@example.com", ip=ip)
        assert info.value.code == code


async def test_a_sign_up_that_fails_after_meeting_a_taken_email_still_counts(
    db_scope, make_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(signup_ip_max_per_hour=2)
    await sign_up(db_scope, settings, "owner@example.com")

    async def broken(*args, **kwargs) -> None:
        raise RuntimeError("the audit write failed")

    monkeypatch.setattr(accounts, "_email_taken_notice", broken)
    with pytest.raises(RuntimeError, match="audit write failed"):
        await sign_up(db_scope, settings, "owner@example.com", ip="203.0.113.10")
    async with db_scope() as s:
        rows = (await s.exec(select(LoginAttempt.kind, LoginAttempt.status, LoginAttempt.settled_at))).all()
    assert [(kind, status) for kind, status, _ in rows] == [("sign_up", "failed")] and rows[0][2] is not None


async def test_an_abandoned_pending_sign_up_stops_counting_after_the_grace(db_scope, make_settings) -> None:
    """A worker killed mid-sign-up leaves a pending row: it counts while the sign-up could still be running
    (a burst of parallel ones), not for the rest of the hour."""
    settings = make_settings(signup_ip_max_per_hour=2)
    ip = "203.0.113.11"

    async def pending(age: timedelta) -> None:
        async with db_scope() as s:
            for _ in range(2):
                s.add(LoginAttempt(kind=login_guard.SIGN_UP, email="gone@example.com", ip=ip, source=f"ip:{ip}",
                                   created_at=datetime.now(UTC) - age))  # fmt: skip

    await pending(login_guard.PENDING_GRACE + timedelta(seconds=5))
    assert (await sign_up(db_scope, settings, "after@example.com", ip=ip)).email == "after@example.com"
    await pending(timedelta(seconds=1))
    with pytest.raises(InputError) as info:
        await sign_up(db_scope, settings, "during@example.com", ip=ip)
    assert info.value.code == "signup_limited"
