"""Two-factor sign-in for local accounts: TOTP set-up, recovery codes, the second sign-in step, the admin policy.

Accounts of OIDC/GitHub providers are out of scope: their provider does the second factor. Every code check
after a password is reserved in the login throttle first (login_guard.reserve_code); a code is accepted
once: a TOTP code's time step must be newer than the last accepted one, a recovery code is marked used.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.accounts import totp
from rubin_app.accounts.twofactor_models import Passkey, PendingLogin, RecoveryCode, TotpSecret
from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.models import AppSetting, Role, User
from rubin_app.services import accounts, audit, login_guard
from rubin_app.services.chats import InputError
from rubin_app.vault.sealing import UnreadableValue, is_sealed
from rubin_app.vault.service import get_vault

POLICY_KEY = "require_two_factor"
POLICIES = ("nobody", "admins", "everyone")
RECOVERY_CODES = 10
ISSUER = "Rubin AI"
PENDING_LIFETIME = timedelta(minutes=5)  # from a correct password to its code
PENDING_COOKIE = "rubin_2fa"


@dataclass(frozen=True)
class Status:
    """What the account page shows: on or off, and how many recovery codes are left."""

    enabled: bool
    codes_left: int


@dataclass(frozen=True)
class Setup:
    """A secret waiting for its first code: shown as text and as a QR code."""

    secret: str
    uri: str
    qr: str


# --------------------------------------------------------------------------- policy


async def get_requirement(*, session: AsyncSession, settings: Settings) -> str:
    """Who must use two-factor sign-in: "nobody", "admins" or "everyone" (admin's choice, else the setting)."""
    row = await session.get(AppSetting, POLICY_KEY)
    value = json.loads(row.value) if row is not None else settings.require_two_factor
    return value if value in POLICIES else settings.require_two_factor


async def set_requirement(*, session: AsyncSession, actor_id: int, value: str, ip: str = "", settings: Settings) -> str:
    """Change who must use two-factor sign-in (admins only)."""
    actor = await session.get(User, actor_id)
    if actor is None or actor.role != Role.admin:
        raise InputError("admin_only")
    if value not in POLICIES:
        raise InputError("bad_setting")
    if value != "nobody" and actor.provider == "local" and not await is_enabled(session=session, user_id=actor_id):
        raise InputError("two_factor_self_first")  # the policy would shut its author out of this page
    row = await session.get(AppSetting, POLICY_KEY) or AppSetting(key=POLICY_KEY)
    row.value, row.updated_at = json.dumps(value), utcnow()
    session.add(row)
    await audit.record(
        session=session, action=audit.POLICY_CHANGED, user_id=actor_id, actor_id=actor_id, ip=ip,
        detail=f"{POLICY_KEY}={value}",
    )  # fmt: skip
    await session.flush()
    return await get_requirement(session=session, settings=settings)


async def setup_due(*, session: AsyncSession, settings: Settings, user_id: int, role: Role, provider: str) -> bool:
    """Whether the policy covers this user and they have not turned two-factor sign-in on yet."""
    if provider != "local" or role == Role.pending:
        return False
    required = await get_requirement(session=session, settings=settings)
    if required == "nobody" or (required == "admins" and role != Role.admin):
        return False
    return not await is_enabled(session=session, user_id=user_id)


# --------------------------------------------------------------------------- the account page


async def is_enabled(*, session: AsyncSession, user_id: int) -> bool:
    """Whether the user signs in with a second factor."""
    row = await session.get(TotpSecret, user_id)
    return row is not None and row.enabled_at is not None


async def get_status(*, session: AsyncSession, user_id: int) -> Status:
    """Two-factor sign-in on or off for the user, and their unused recovery codes."""
    unused = select(func.count()).where(RecoveryCode.user_id == user_id, col(RecoveryCode.used_at).is_(None))
    left = int((await session.exec(unused)).one())
    return Status(enabled=await is_enabled(session=session, user_id=user_id), codes_left=left)


async def _local_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None or user.provider != "local" or not user.password_hash:
        raise InputError("not_local_account")
    return user


async def begin_setup(*, session: AsyncSession, secret_key: str, user_id: int) -> Setup:
    """A new secret for the user to add to an authenticator app; not in force until confirm_setup."""
    user = await _local_user(session, user_id)
    row = await session.get(TotpSecret, user_id)
    if row is not None and row.enabled_at is not None:
        raise InputError("two_factor_already_on")
    secret = totp.new_secret()
    row = row or TotpSecret(user_id=user_id, secret="")
    sealed = (await get_vault().prime(session, user_id)).seal(totp.SEALED_COLUMN, secret)  # the user's data key
    row.secret, row.created_at, row.last_step = sealed, utcnow(), None
    session.add(row)
    await session.flush()
    uri = totp.provisioning_uri(secret, account=user.email or str(user_id), issuer=ISSUER)
    return Setup(secret=secret, uri=uri, qr=totp.qr_data_url(uri))


async def _accept_code(session: AsyncSession, secret_key: str, row: TotpSecret, code: str) -> None:
    """Accept a TOTP code once (previous, current or next 30 s step); InputError otherwise."""
    try:
        if not is_sealed(row.secret):  # never trusted in clear: set up again
            raise UnreadableValue("a TOTP secret that is not sealed")
        secret = (await get_vault().prime(session, row.user_id)).open(totp.SEALED_COLUMN, row.secret)
    except UnreadableValue:
        raise InputError("two_factor_unreadable") from None
    step = totp.matching_step(secret, code, utcnow())
    if step is None:
        raise InputError("wrong_code")
    newer = (col(TotpSecret.last_step).is_(None)) | (col(TotpSecret.last_step) < step)
    stmt = update(TotpSecret).where(col(TotpSecret.user_id) == row.user_id, newer).values(last_step=step)
    if int((await session.exec(stmt)).rowcount or 0) == 0:
        raise InputError("code_used")  # this step's code (or a later one) was already accepted


async def _new_codes(session: AsyncSession, secret_key: str, user_id: int) -> list[str]:
    await session.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))
    codes = totp.new_recovery_codes(RECOVERY_CODES)
    for code in codes:
        session.add(RecoveryCode(user_id=user_id, code_hash=totp.hash_recovery_code(secret_key, user_id, code)))
    return codes


async def confirm_setup(*, session: AsyncSession, secret_key: str, user_id: int, code: str, ip: str = "") -> list[str]:
    """Turn two-factor sign-in on with a first code; returns the recovery codes (shown once)."""
    row = await session.get(TotpSecret, user_id)
    if row is None:
        raise InputError("two_factor_not_started")
    if row.enabled_at is not None:
        raise InputError("two_factor_already_on")
    await _accept_code(session, secret_key, row, code)
    await session.refresh(row)
    row.enabled_at = utcnow()
    session.add(row)
    codes = await _new_codes(session, secret_key, user_id)
    await audit.record(session=session, action=audit.TWO_FACTOR_ON, user_id=user_id, actor_id=user_id, ip=ip)
    await session.flush()
    return codes


async def _enabled_row(session: AsyncSession, user_id: int) -> TotpSecret:
    row = await session.get(TotpSecret, user_id)
    if row is None or row.enabled_at is None:
        raise InputError("two_factor_off")
    return row


async def regenerate_codes(
    *, session: AsyncSession, secret_key: str, user_id: int, code: str, ip: str = ""
) -> list[str]:
    """Replace every recovery code with 10 new ones (a current code confirms it); returns them, shown once."""
    await _accept_code(session, secret_key, await _enabled_row(session, user_id), code)
    codes = await _new_codes(session, secret_key, user_id)
    await audit.record(session=session, action=audit.RECOVERY_CODES_NEW, user_id=user_id, actor_id=user_id, ip=ip)
    await session.flush()
    return codes


async def disable(
    *, session: AsyncSession, settings: Settings, secret_key: str, user_id: int, password: str, code: str,
    keep_session_id: int | None, ip: str = "",
) -> None:  # fmt: skip
    """Turn two-factor sign-in off: the password (throttled like a password change) and a current code."""
    row = await _enabled_row(session, user_id)
    await accounts.check_current_password(
        session=session, settings=settings, user_id=user_id, password=password, keep_session_id=keep_session_id, ip=ip,
        action=audit.TWO_FACTOR_OFF,
    )  # fmt: skip
    await _accept_code(session, secret_key, row, code)
    await session.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))
    await session.exec(delete(Passkey).where(col(Passkey.user_id) == user_id))
    await session.exec(delete(TotpSecret).where(col(TotpSecret.user_id) == user_id))
    await audit.record(session=session, action=audit.TWO_FACTOR_OFF, user_id=user_id, actor_id=user_id, ip=ip)
    await session.flush()


async def reset(*, session: AsyncSession, actor_id: int, email: str, ip: str = "") -> None:
    """Turn someone's two-factor sign-in off (admins only): for a lost phone with lost recovery codes."""
    actor = await session.get(User, actor_id)
    if actor is None or actor.role != Role.admin:
        raise InputError("admin_only")
    user = (await session.exec(select(User).where(User.email == email.strip().lower()[:254]))).first()
    if user is None or user.id is None:
        raise InputError("account_not_found")
    if not await is_enabled(session=session, user_id=user.id):
        raise InputError("two_factor_off")
    for table in (RecoveryCode, Passkey, TotpSecret):
        await session.exec(delete(table).where(col(table.user_id) == user.id))
    await audit.record(
        session=session, action=audit.TWO_FACTOR_OFF, user_id=user.id, actor_id=actor_id, email=user.email, ip=ip,
        detail="reset by an admin",
    )  # fmt: skip
    await session.flush()


# --------------------------------------------------------------------------- signing in


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_login(*, session: AsyncSession, user_id: int, lifetime: timedelta, ip: str = "") -> str:
    """Bind the second step to this password check: a random token for the browser, its hash stored."""
    now = utcnow()
    await session.exec(delete(PendingLogin).where(col(PendingLogin.expires_at) < now))
    token = secrets.token_urlsafe(32)
    session.add(PendingLogin(token_hash=_token_hash(token), user_id=user_id, expires_at=now + lifetime, ip=ip[:64]))
    await session.flush()
    return token


async def _use_recovery_code(session: AsyncSession, secret_key: str, user: User, code: str) -> None:
    assert user.id is not None
    digest = totp.hash_recovery_code(secret_key, user.id, code)
    mine = (RecoveryCode.user_id == user.id, RecoveryCode.code_hash == digest)
    found = (await session.exec(select(RecoveryCode).where(*mine))).first()
    if found is None:
        raise InputError("wrong_code")
    unused = (col(RecoveryCode.id) == found.id) & col(RecoveryCode.used_at).is_(None)
    stmt = update(RecoveryCode).where(unused).values(used_at=utcnow())
    if int((await session.exec(stmt)).rowcount or 0) == 0:
        raise InputError("recovery_code_used")


async def _check_second_factor(session: AsyncSession, secret_key: str, user: User, code: str) -> str:
    """Accept a TOTP or recovery code of the user; returns which ("totp" / "recovery")."""
    if totp.looks_like_recovery_code(code):
        await _use_recovery_code(session, secret_key, user, code)
        return "recovery"
    assert user.id is not None
    await _accept_code(session, secret_key, await _enabled_row(session, user.id), code)
    return "totp"


SecondStepCheck = Callable[[User, PendingLogin], Awaitable[str]]


async def finish_login(
    *, session: AsyncSession, settings: Settings, secret_key: str, token: str, code: str, ip: str = ""
) -> User:
    """The second step with a TOTP or recovery code; the user, signed in (the caller opens the session)."""

    async def check(user: User, _pending: PendingLogin) -> str:
        return await _check_second_factor(session, secret_key, user, code[:100])

    return await finish_second_step(session=session, settings=settings, token=token, check=check, ip=ip)


async def pending_step(*, session: AsyncSession, token: str) -> tuple[PendingLogin, User]:
    """The live (unexpired, unused) pending step of this token and its user; InputError("code_expired")."""
    live = (col(PendingLogin.token_hash) == _token_hash(token or ""), col(PendingLogin.done_at).is_(None))
    pending = (await session.exec(select(PendingLogin).where(*live, PendingLogin.expires_at > utcnow()))).first()
    user = await session.get(User, pending.user_id) if pending is not None else None
    if pending is None or user is None or user.email is None:
        raise InputError("code_expired")
    return pending, user


async def finish_second_step(
    *, session: AsyncSession, settings: Settings, token: str, check: SecondStepCheck, ip: str = ""
) -> User:
    """Run `check` (a code or a passkey) for a pending password step, throttled; the user, signed in.

    A failed check is recorded (and committed) before InputError is raised; the pending step stays for a retry.
    """
    pending, user = await pending_step(session=session, token=token)
    user_id, email, pending_id = user.id, user.email or "", pending.id
    attempt = await login_guard.reserve_code(
        session=session, limits=login_guard.Limits.of(settings), email=email, ip=ip
    )
    try:
        kind = await check(user, pending)
    except InputError as exc:
        await session.rollback()
        await login_guard.settle(session=session, attempt_id=attempt, ok=False)
        await audit.record(
            session=session, action=audit.SIGN_IN_FAILED, ok=False, user_id=user_id, email=email, ip=ip,
            detail=f"second factor: {exc.code}",
        )  # fmt: skip
        await session.commit()
        raise
    await login_guard.settle(session=session, attempt_id=attempt, ok=True)
    unused = (col(PendingLogin.id) == pending_id) & col(PendingLogin.done_at).is_(None)
    stmt = update(PendingLogin).where(unused).values(done_at=utcnow())
    if int((await session.exec(stmt)).rowcount or 0) == 0:
        raise InputError("code_expired")  # the same step finished a moment ago in another request
    if kind == "recovery":
        await audit.record(session=session, action=audit.RECOVERY_CODE_USED, user_id=user_id, email=email, ip=ip)
    await accounts.complete_sign_in(session=session, settings=settings, user=user, ip=ip)
    return user
