"""Sign-in throttles that hold under any concurrency: every password check is reserved before Argon2 runs.

- Pair (account, source): at most LOGIN_MAX_FAILURES failed checks per LOGIN_LOCKOUT_MINUTES, then a
  hard lock. The source is the IP, or the known device (`rubin_device` cookie) or signed-in session
  when one is presented: an attacker only locks themself out of that account.
- Account-wide (across sources) and IP-wide (across accounts): past LOGIN_MAX_FAILURES and
  LOGIN_IP_MAX_FAILURES each attempt waits 2^(n - threshold) s after the previous failure (capped at the
  window) — a delay, not a lock. Known devices and signed-in sessions skip these two.
- Pending checks count as failures until settled. Reservations are serialised per key: PostgreSQL
  advisory transaction locks taken in a fixed order; on SQLite every write transaction starts with
  BEGIN IMMEDIATE (services/db.py), which already holds the database's write lock.
- Sign-ups that meet a taken email are limited per IP (SIGNUP_IP_MAX_PER_HOUR). A sign-up that fails for
  another reason gives its reservation back (`release_sign_up`), and an abandoned one (its worker died)
  stops counting after PENDING_GRACE.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Delete, Update, and_, delete, or_, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import Settings
from rubin_app.models import LoginAttempt
from rubin_app.models.user import utcnow
from rubin_app.services.chats import InputError

log = logging.getLogger(__name__)

PENDING, FAILED, OK = "pending", "failed", "ok"
SIGN_IN, PASSWORD, SIGN_UP = "sign_in", "password", "sign_up"  # kinds
CODE = "code"  # a second-factor code (TOTP or recovery) after a correct password: its own lock
CHECKS = (SIGN_IN, PASSWORD)  # password checks: what the lockouts count
PENDING_GRACE = timedelta(seconds=60)  # no check takes this long: an older pending row was abandoned
SIGNUP_WINDOW = timedelta(hours=1)
MAX_DELAY_STEPS = 30  # 2^30 s is past any window: the cap applies long before
DEVICE_COOKIE = "rubin_device"
MAX_DEVICES = 5  # accounts remembered per browser


@dataclass(frozen=True)
class Limits:
    """The thresholds in force, from the settings."""

    pair_max: int
    account_threshold: int
    ip_threshold: int
    window: timedelta
    signup_ip_max: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits the settings ask for."""
        return cls(
            pair_max=settings.login_max_failures, account_threshold=settings.login_max_failures,
            ip_threshold=settings.login_ip_max_failures, window=timedelta(minutes=settings.login_lockout_minutes),
            signup_ip_max=settings.signup_ip_max_per_hour,
        )  # fmt: skip


def refusal(wait: timedelta, code: str = "locked_out") -> InputError:
    """The error that tells when to try again: minutes, or seconds for a short delay."""
    seconds = max(1, -(-int(wait.total_seconds() * 1000) // 1000))
    if seconds < 60 and code == "locked_out":
        return InputError("slow_down", seconds=seconds)
    return InputError(code, minutes=max(1, -(-seconds // 60)))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def _lock_id(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


async def _lock(session: AsyncSession, *keys: str) -> None:
    """Serialise reservations per key until the transaction ends (SQLite already holds its write lock)."""
    if session.bind.dialect.name != "postgresql":
        return
    for lock_id in sorted({_lock_id(k) for k in keys}):  # a fixed order: no deadlocks
        await session.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=lock_id))  # type: ignore[call-overload]


def _failing():
    return col(LoginAttempt.status).in_((PENDING, FAILED))


async def _pair_wait(session: AsyncSession, limits: Limits, email: str, source: str, now: datetime) -> timedelta | None:
    """The hard lock: the newest failures of this account from this source (a success clears them)."""
    mine = (LoginAttempt.email == email, LoginAttempt.source == source, col(LoginAttempt.kind).in_(CHECKS))
    last_ok = select(func.max(LoginAttempt.created_at)).where(*mine, LoginAttempt.status == OK)
    ok_at = (await session.exec(last_ok)).one()
    stmt = select(LoginAttempt.created_at).where(*mine, _failing(), LoginAttempt.created_at >= now - limits.window)
    if ok_at is not None:
        stmt = stmt.where(LoginAttempt.created_at > ok_at)
    times = (await session.exec(stmt.order_by(col(LoginAttempt.created_at).desc()).limit(limits.pair_max))).all()
    if len(times) < limits.pair_max:
        return None
    return _aware(times[-1]) + limits.window - now


async def _spread_wait(
    session: AsyncSession, where, threshold: int, window: timedelta, now: datetime
) -> timedelta | None:
    """The progressive delay: past the threshold, 2^(n - threshold) s after the previous failure."""
    recent = (where, col(LoginAttempt.kind).in_(CHECKS), LoginAttempt.created_at >= now - window)
    n = int((await session.exec(select(func.count()).where(*recent, _failing()))).one())
    if n < threshold:
        return None
    last_failed = select(func.max(LoginAttempt.settled_at)).where(*recent, LoginAttempt.status == FAILED)
    last_pending = select(func.max(LoginAttempt.created_at)).where(*recent, LoginAttempt.status == PENDING)
    failed_at, pending_at = (await session.exec(last_failed)).one(), (await session.exec(last_pending)).one()
    moments = [_aware(failed_at)] if failed_at else []
    if pending_at:  # a check still running counts as failing now
        moments.append(min(now, _aware(pending_at) + PENDING_GRACE))
    last = max(moments, default=now)
    delay = min(timedelta(seconds=2 ** min(n - threshold, MAX_DELAY_STEPS)), window)
    wait = last + delay - now
    return wait if wait > timedelta(0) else None


async def _forget_old(session: AsyncSession, limits: Limits, now: datetime) -> None:
    """Drop rows no throttle reads any more (one cleaner at a time on PostgreSQL)."""
    if session.bind.dialect.name == "postgresql":
        try_lock = text("SELECT pg_try_advisory_xact_lock(:k)").bindparams(k=_lock_id("login-cleanup"))
        got = (await session.exec(try_lock)).one()  # type: ignore[call-overload]
        if not got[0]:
            return
    keep = 2 * max(limits.window, SIGNUP_WINDOW)
    await session.exec(delete(LoginAttempt).where(col(LoginAttempt.created_at) < now - keep))  # type: ignore[call-overload]


async def _add(session: AsyncSession, **fields: object) -> int:
    attempt = LoginAttempt(**fields)  # type: ignore[arg-type]
    session.add(attempt)
    await session.flush()
    assert attempt.id is not None
    await session.commit()  # the reservation is visible, and the locks released, before the check runs
    return attempt.id


async def reserve(
    *, session: AsyncSession, limits: Limits, kind: str, email: str, ip: str, source: str, known: bool
) -> int:
    """Reserve one password check and commit; InputError("locked_out" / "slow_down") when throttled."""
    now = utcnow()
    await _lock(session, f"account:{email}", f"ip:{ip}")
    waits = [await _pair_wait(session, limits, email, source, now)]
    if not known:
        account, window = LoginAttempt.email == email, limits.window
        waits.append(await _spread_wait(session, account, limits.account_threshold, window, now))
        if ip:
            waits.append(await _spread_wait(session, LoginAttempt.ip == ip, limits.ip_threshold, window, now))
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        raise refusal(wait)
    await _forget_old(session, limits, now)
    return await _add(session, kind=kind, email=email, ip=ip[:64], source=source[:80], known=known, created_at=now)


async def reserve_sign_up(*, session: AsyncSession, limits: Limits, email: str, ip: str) -> int | None:
    """Reserve a sign-up from this IP and commit; InputError("signup_limited") after too many taken emails."""
    if not limits.signup_ip_max or not ip:
        return None
    now = utcnow()
    await _lock(session, f"sign_up:{ip}")
    # Pending sign-ups count while they may still be running (a burst of parallel ones must not all pass the
    # limit), but not past PENDING_GRACE: such a row was abandoned (its worker was killed mid-request; other
    # failures are given back by release_sign_up). It told no one that its email was taken — the refusal is
    # answered only after the 'failed' mark is committed — so it must not pause the IP's sign-ups for an hour.
    running = and_(col(LoginAttempt.status) == PENDING, col(LoginAttempt.created_at) >= now - PENDING_GRACE)
    counted = or_(col(LoginAttempt.status) == FAILED, running)
    stmt = select(LoginAttempt.created_at).where(
        LoginAttempt.kind == SIGN_UP, LoginAttempt.ip == ip, counted, LoginAttempt.created_at >= now - SIGNUP_WINDOW
    )
    times = (await session.exec(stmt.order_by(col(LoginAttempt.created_at).desc()).limit(limits.signup_ip_max))).all()
    if len(times) >= limits.signup_ip_max:
        raise refusal(_aware(times[-1]) + SIGNUP_WINDOW - now, "signup_limited")
    source = f"ip:{ip}"[:80]
    return await _add(session, kind=SIGN_UP, email=email, ip=ip[:64], source=source, known=False, created_at=now)


async def reserve_code(*, session: AsyncSession, limits: Limits, email: str, ip: str) -> int:
    """Reserve one second-factor check and commit; InputError("locked_out") after too many wrong codes.

    Counted per account from any source, and a correct password does not clear them (only a correct code
    does): knowing the password buys LOGIN_MAX_FAILURES code guesses per LOGIN_LOCKOUT_MINUTES, no more.
    """
    now = utcnow()
    await _lock(session, f"account:{email}", f"ip:{ip}")
    mine = (LoginAttempt.email == email, LoginAttempt.kind == CODE)
    last_ok = select(func.max(LoginAttempt.created_at)).where(*mine, LoginAttempt.status == OK)
    ok_at = (await session.exec(last_ok)).one()
    stmt = select(LoginAttempt.created_at).where(*mine, _failing(), LoginAttempt.created_at >= now - limits.window)
    if ok_at is not None:
        stmt = stmt.where(LoginAttempt.created_at > ok_at)
    times = (await session.exec(stmt.order_by(col(LoginAttempt.created_at).desc()).limit(limits.pair_max))).all()
    if len(times) >= limits.pair_max:
        wait = _aware(times[-1]) + limits.window - now
        raise InputError("locked_out", minutes=max(1, -(-int(wait.total_seconds()) // 60)))
    await _forget_old(session, limits, now)
    return await _add(session, kind=CODE, email=email, ip=ip[:64], source=f"ip:{ip}"[:80], known=False, created_at=now)


async def settle(*, session: AsyncSession, attempt_id: int | None, ok: bool) -> None:
    """Mark a reserved attempt as succeeded or failed (in the caller's transaction)."""
    if attempt_id is None:
        return
    values = {"status": OK if ok else FAILED, "settled_at": utcnow()}
    await session.exec(update(LoginAttempt).where(col(LoginAttempt.id) == attempt_id).values(**values))  # type: ignore[call-overload]


_releases: set[asyncio.Task[None]] = set()  # running releases (a task must be referenced until it ends)


async def release_sign_up(*, session: AsyncSession, attempt_id: int | None, met_taken: bool) -> None:
    """Give back the reservation of a sign-up that failed unexpectedly (a database error, a cancelled request):
    deleted, so that it does not count against the IP as a taken email — or marked failed when it did meet
    one (`met_taken`). Best effort and never raises an error of its own (the caller re-raises the original).

    The caller's session is rolled back (its transaction may be broken, and on SQLite it may hold the write
    lock); the row is changed in a fresh session, in a task of its own that a cancellation does not stop.
    """
    if attempt_id is None:
        return
    work = asyncio.ensure_future(_release(session.bind, attempt_id, met_taken))
    _releases.add(work)
    work.add_done_callback(_releases.discard)
    try:
        await session.rollback()
    except Exception:  # the session may be unusable: the fresh one does the work
        log.debug("rollback before releasing sign-up attempt %s failed", attempt_id, exc_info=True)
    await asyncio.shield(work)  # _release raises nothing; a cancellation of the caller leaves it running


async def _release(bind: AsyncEngine | AsyncConnection | None, attempt_id: int, met_taken: bool) -> None:
    still_pending = and_(col(LoginAttempt.id) == attempt_id, col(LoginAttempt.status) == PENDING)
    stmt: Update | Delete = (
        update(LoginAttempt).where(still_pending).values(status=FAILED, settled_at=utcnow())
        if met_taken
        else delete(LoginAttempt).where(still_pending)
    )
    try:
        async with AsyncSession(bind) as fresh:
            await fresh.exec(stmt)
            await fresh.commit()
    except Exception:  # best effort: the row stops counting after PENDING_GRACE anyway
        log.warning("could not release sign-up attempt %s", attempt_id, exc_info=True)


# --------------------------------------------------------------------------- known devices


def _device_sig(key: str, user_id: int, email: str, device_id: str) -> str:
    message = f"rubin-device|{user_id}|{email}|{device_id}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:32]


def known_device(key: str, cookie: str, *, user_id: int, email: str) -> str | None:
    """The device id the `rubin_device` cookie holds for this account, if its signature is valid."""
    if not key:
        return None
    for entry in (cookie or "").split("~")[:MAX_DEVICES]:
        uid, _, rest = entry.partition(".")
        device_id, _, sig = rest.partition(".")
        if uid == str(user_id) and device_id and hmac.compare_digest(sig, _device_sig(key, user_id, email, device_id)):
            return device_id
    return None


def remember_device(key: str, cookie: str, *, user_id: int, email: str) -> str:
    """The cookie value with this account's entry first (a new device id the first time)."""
    device_id = known_device(key, cookie, user_id=user_id, email=email) or secrets.token_urlsafe(12)
    others = [
        e for e in (cookie or "").split("~") if e.count(".") == 2 and len(e) <= 100 and not e.startswith(f"{user_id}.")
    ]
    entry = f"{user_id}.{device_id}.{_device_sig(key, user_id, email, device_id)}"
    return "~".join([entry, *others[: MAX_DEVICES - 1]])
