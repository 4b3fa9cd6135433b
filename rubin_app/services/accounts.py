"""Accounts: local sign-up and sign-in, provider identities, roles, profile, deletion and export.

Every function that reads or changes a user's data takes the acting user's id and touches only that
user's rows; admin functions check the actor's role here, not only in the UI.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.accounts import reauth
from rubin_app.accounts.twofactor_models import TotpSecret
from rubin_app.config import Settings
from rubin_app.i18n import CATALOGS
from rubin_app.knowledge import tombstones
from rubin_app.models import AppSetting, AuditEvent, AuthSession, Conversation, Message, Role, User
from rubin_app.models.user import utcnow
from rubin_app.services import audit, credentials, login_guard, sessions
from rubin_app.services.chats import InputError
from rubin_app.services.credentials import check_password, clean_display_name, normalize_email
from rubin_app.vault.transfer import reseal_owner, shred_user_keys
from rubin_app.webhooks import events as webhook_events

LEGACY_PROVIDER = "legacy"  # the foundation's single local user, before sign-in existed
LANGUAGES = {"", *CATALOGS}  # "": follow the browser
THEMES = {"", "light", "dark"}
_first_user_lock = asyncio.Lock()


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Policy:
    """Sign-in switches: the settings' defaults, overridden by what an admin saved."""

    local_login: bool
    local_signup: bool
    require_approval: bool


POLICY_KEYS = ("local_login", "local_signup", "require_approval")


async def get_policy(*, session: AsyncSession, settings: Settings) -> Policy:
    """The sign-in policy in force."""
    saved = {s.key: s.value for s in (await session.exec(select(AppSetting))).all()}
    values: dict[str, bool] = {
        "local_login": settings.local_login_default,
        "local_signup": settings.local_signup_default,
        "require_approval": settings.require_approval,
    }
    for key in POLICY_KEYS:
        if key in saved:
            values[key] = bool(json.loads(saved[key]))
    return Policy(**values)


async def set_policy(
    *, session: AsyncSession, settings: Settings, actor_id: int, key: str, value: bool, ip: str = ""
) -> Policy:
    """Change one switch (admins only); refuses to switch off the only way to sign in."""
    await _require_admin(session, actor_id)
    if key not in POLICY_KEYS:
        raise InputError("bad_setting")
    if key == "local_login" and not value and not settings.auth_providers:
        raise InputError("last_login_method")
    row = await session.get(AppSetting, key) or AppSetting(key=key)
    row.value = json.dumps(bool(value))
    row.updated_at = utcnow()
    session.add(row)
    await audit.record(
        session=session,
        action=audit.POLICY_CHANGED,
        user_id=actor_id,
        actor_id=actor_id,
        ip=ip,
        detail=f"{key}={value}",
    )
    await session.flush()
    return await get_policy(session=session, settings=settings)


# --------------------------------------------------------------------------- users


async def get_user(*, session: AsyncSession, user_id: int) -> User | None:
    """A user by id."""
    return await session.get(User, user_id)


async def _require_admin(session: AsyncSession, actor_id: int) -> User:
    actor = await session.get(User, actor_id)
    if actor is None or actor.role != Role.admin:
        raise InputError("admin_only")
    return actor


async def _count_admins(session: AsyncSession) -> int:
    return int((await session.exec(select(func.count()).where(User.role == Role.admin))).one())


async def _new_user_role(session: AsyncSession, settings: Settings, policy: Policy, email: str) -> Role:
    real = select(func.count()).where(User.provider != LEGACY_PROVIDER)
    if int((await session.exec(real)).one()) == 0 or email in settings.admin_emails:
        return Role.admin
    return Role.pending if policy.require_approval else Role.user


async def _adopt_legacy_chats(session: AsyncSession, user_id: int) -> None:
    """The first admin inherits the chats made before sign-in existed."""
    legacy = (await session.exec(select(User).where(User.provider == LEGACY_PROVIDER))).all()
    for old in legacy:
        if old.id is not None:
            await reseal_owner(session, old_user_id=old.id, new_user_id=user_id)
        await session.delete(old)


async def _create_user(
    session: AsyncSession, settings: Settings, *, external_id: str, email: str, name: str, provider: str,
    password_hash: str | None, ip: str,
) -> User:  # fmt: skip
    if session.bind.dialect.name == "postgresql":
        # Workers in other processes: serialise account creation in the database (the first becomes admin).
        await session.exec(text("SELECT pg_advisory_xact_lock(72657102)"))  # type: ignore[call-overload]
    policy = await get_policy(session=session, settings=settings)
    role = await _new_user_role(session, settings, policy, email)
    user = User(
        external_id=external_id, email=email, display_name=name, provider=provider, role=role,
        password_hash=password_hash, last_login_at=utcnow(),
    )  # fmt: skip
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:  # the same email signed up at the same moment on another worker
        await session.rollback()
        raise InputError("email_taken") from None
    assert user.id is not None
    if role == Role.admin and await _count_admins(session) == 1:
        await _adopt_legacy_chats(session, user.id)
    await audit.record(
        session=session, action=audit.SIGN_UP, user_id=user.id, email=email, ip=ip, detail=f"{provider} role={role}"
    )
    await webhook_events.emit(
        session, event_type="user.created", user_id=user.id,
        data={"email": email, "display_name": name, "provider": provider, "role": role.value},
    )  # fmt: skip
    return user


async def _email_taken(session: AsyncSession, email: str) -> bool:
    return (await session.exec(select(User.id).where(User.email == email))).first() is not None


async def sign_up_local(
    *, session: AsyncSession, settings: Settings, email: str, password: str, display_name: str = "", ip: str = ""
) -> User:
    """Create an email + password account (the first one becomes admin); commits the session."""
    policy = await get_policy(session=session, settings=settings)
    if not (policy.local_login and policy.local_signup):
        raise InputError("signup_closed")
    email = normalize_email(email)
    name = clean_display_name(display_name, fallback=email.split("@")[0])
    check_password(password, email=email, min_length=settings.password_min_length)
    limits = login_guard.Limits.of(settings)
    attempt = await login_guard.reserve_sign_up(session=session, limits=limits, email=email, ip=ip)
    met_taken = settled = False
    try:
        password_hash = await asyncio.to_thread(
            credentials.hasher.hash, password
        )  # also when the email is taken: same timing
        async with _first_user_lock:  # two first sign-ups at once must not both become admin
            owner = (await session.exec(select(User).where(User.email == email))).first()
            if owner is not None:
                met_taken = True
                await _email_taken_notice(session, owner, ip, attempt)
                settled = True
                raise InputError("signup_not_created")
            try:
                user = await _create_user(
                    session, settings, external_id=f"local:{email}", email=email, name=name, provider="local",
                    password_hash=password_hash, ip=ip,
                )  # fmt: skip
            except InputError:  # the same email signed up at the same moment on another worker
                met_taken = True
                await login_guard.settle(session=session, attempt_id=attempt, ok=False)
                await session.commit()
                settled = True
                raise InputError("signup_not_created") from None
            await login_guard.settle(session=session, attempt_id=attempt, ok=True)
            # Committed before the lock is released: the next sign-up must see this user when it counts.
            await session.commit()
            settled = True
    except BaseException:
        if not settled:  # an unexpected failure (database, cancellation): not a taken email for the IP's limit
            await login_guard.release_sign_up(session=session, attempt_id=attempt, met_taken=met_taken)
        raise
    return user


async def _email_taken_notice(session: AsyncSession, owner: User, ip: str, attempt: int | None) -> None:
    """A sign-up met an existing account: audit it for the owner (shown on their account page), count it."""
    await audit.record(
        session=session, action=audit.SIGN_UP_TAKEN, ok=False, user_id=owner.id, email=owner.email, ip=ip
    )
    await login_guard.settle(session=session, attempt_id=attempt, ok=False)
    await session.commit()


async def sign_up_attempts_notice(
    *, session: AsyncSession, user_id: int, days: int = 30
) -> tuple[int, datetime | None]:
    """How often someone tried to sign up with this account's email lately, and when last."""
    recent = (
        AuditEvent.action == audit.SIGN_UP_TAKEN, AuditEvent.user_id == user_id,
        AuditEvent.created_at >= utcnow() - timedelta(days=days),
    )  # fmt: skip
    count = int((await session.exec(select(func.count()).where(*recent))).one())
    last = (await session.exec(select(func.max(AuditEvent.created_at)).where(*recent))).one()
    return count, last


async def sign_in_local(
    *, session: AsyncSession, settings: Settings, email: str, password: str, ip: str = "", device_cookie: str = "",
    device_key: str = "",
) -> User:  # fmt: skip
    """Check an email and password; a failure is recorded (and committed) before InputError is raised.

    The check is reserved first (login_guard); a valid known-device cookie (`device_cookie`, signed with
    `device_key`) exempts it from the account-wide and IP-wide throttles.
    """
    policy = await get_policy(session=session, settings=settings)
    if not policy.local_login:
        raise InputError("local_login_off")
    try:
        email = normalize_email(email)
    except InputError:
        raise InputError("bad_credentials") from None
    user = (await session.exec(select(User).where(User.email == email, User.provider == "local"))).first()
    device = None
    if user is not None and user.id is not None:
        device = login_guard.known_device(device_key, device_cookie, user_id=user.id, email=email)
    attempt = await _reserve_check(
        session, settings, kind=login_guard.SIGN_IN, email=email, ip=ip,
        source=f"device:{device}" if device else f"ip:{ip}", known=device is not None,
        user_id=user.id if user else None,
    )  # fmt: skip
    ok = await asyncio.to_thread(credentials.verify, user.password_hash if user else None, password)
    await login_guard.settle(session=session, attempt_id=attempt, ok=ok and user is not None)
    if not ok or user is None:
        await audit.record(
            session=session,
            action=audit.SIGN_IN_FAILED,
            ok=False,
            user_id=user.id if user else None,
            email=email,
            ip=ip,
        )
        await session.commit()
        raise InputError("bad_credentials")
    if user.password_hash and credentials.hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await asyncio.to_thread(credentials.hasher.hash, password)
    assert user.id is not None
    if await _second_factor_on(session, user.id):
        session.add(user)
        await session.commit()  # the settled check and a rehash are kept; no session, no "sign_in" yet
        raise SecondFactorNeeded(user.id)
    await _signed_in(session, settings, user, ip)
    return user


class SecondFactorNeeded(Exception):
    """The password was right and the account has two-factor sign-in: ask for a code before a session opens."""

    def __init__(self, user_id: int) -> None:
        super().__init__("second factor needed")
        self.user_id = user_id


async def _second_factor_on(session: AsyncSession, user_id: int) -> bool:
    row = await session.get(TotpSecret, user_id)
    return row is not None and row.enabled_at is not None


async def complete_sign_in(*, session: AsyncSession, settings: Settings, user: User, ip: str = "") -> None:
    """Record a finished sign-in (after the second factor, accounts/twofactor.py)."""
    await _signed_in(session, settings, user, ip)


async def _reserve_check(
    session: AsyncSession, settings: Settings, *, kind: str, email: str, ip: str, source: str, known: bool,
    user_id: int | None,
) -> int:  # fmt: skip
    """Reserve a password check (committed); a throttled one is audited and refused."""
    try:
        return await login_guard.reserve(
            session=session, limits=login_guard.Limits.of(settings), kind=kind, email=email, ip=ip, source=source,
            known=known,
        )  # fmt: skip
    except InputError as exc:
        if _refusal_worth_auditing(email, ip):
            detail = f"{kind} {source.partition(':')[0]} {exc.code} {exc.params}"
            await audit.record(
                session=session, action=audit.LOCKED_OUT, ok=False, user_id=user_id, email=email, ip=ip, detail=detail
            )
            await session.commit()
        raise


_refusals_audited: dict[tuple[str, str], float] = {}
REFUSAL_AUDIT_EVERY = 60.0  # seconds: one "locked out" row per account and address, however many refusals


def _refusal_worth_auditing(email: str, ip: str) -> bool:
    """Whether a refused sign-in gets an audit row (a flood of refused attempts must not flood the log)."""
    now = time.monotonic()
    if len(_refusals_audited) > 10_000:
        for key, at in list(_refusals_audited.items()):
            if now - at > REFUSAL_AUDIT_EVERY:
                del _refusals_audited[key]
    last = _refusals_audited.get((email, ip))
    if last is not None and now - last < REFUSAL_AUDIT_EVERY:
        return False
    _refusals_audited[(email, ip)] = now
    return True


async def _signed_in(session: AsyncSession, settings: Settings, user: User, ip: str) -> None:
    user.last_login_at = utcnow()
    if user.email in settings.admin_emails and user.role != Role.admin:
        await audit.record(
            session=session, action=audit.ROLE_CHANGED, user_id=user.id, email=user.email, ip=ip,
            detail=f"{user.role}->admin (ADMIN_EMAILS)",
        )  # fmt: skip
        user.role = Role.admin
    session.add(user)
    await audit.record(
        session=session, action=audit.SIGN_IN, user_id=user.id, email=user.email, ip=ip, detail=user.provider
    )
    await session.flush()


async def sign_in_external(
    *, session: AsyncSession, settings: Settings, provider: str, subject: str, email: str | None,
    display_name: str = "", ip: str = "",
) -> User:  # fmt: skip
    """Sign in (creating the account the first time) with an identity a provider vouched for."""
    subject = (subject or "").strip()
    if not subject or len(subject) > 200:
        raise InputError("login_failed")
    external_id = f"{provider}:{subject}"
    user = (await session.exec(select(User).where(User.external_id == external_id))).first()
    if user is None:
        if not email:
            raise InputError("no_email")
        email = normalize_email(email)
        try:
            name = clean_display_name(
                display_name[: credentials.NAME_MAX] if display_name else "", fallback=email.split("@")[0]
            )
        except InputError:  # the provider's name is not the user's to fix here: show the email's local part
            name = email.split("@")[0]
        async with _first_user_lock:
            if await _email_taken(session, email):
                raise InputError("email_taken")
            user = await _create_user(
                session, settings, external_id=external_id, email=email, name=name, provider=provider,
                password_hash=None, ip=ip,
            )  # fmt: skip
            await session.commit()  # before the lock is released (see sign_up_local)
    await _signed_in(session, settings, user, ip)
    return user


async def update_profile(
    *, session: AsyncSession, user_id: int, display_name: str | None = None, language: str | None = None,
    theme: str | None = None,
) -> User:  # fmt: skip
    """Change the user's own name, language or theme."""
    user = await session.get(User, user_id)
    if user is None:
        raise InputError("account_not_found")
    if display_name is not None:
        name = clean_display_name(display_name)
        if not name:
            raise InputError("empty_name")
        user.display_name = name
    if language is not None:
        if language not in LANGUAGES:
            raise InputError("bad_setting")
        user.language = language
    if theme is not None:
        if theme not in THEMES:
            raise InputError("bad_setting")
        user.theme = theme
    session.add(user)
    await session.flush()
    return user


async def change_password(
    *, session: AsyncSession, settings: Settings, user_id: int, current: str, new: str, keep_session_id: int | None,
    ip: str = "",
) -> int:  # fmt: skip
    """Change a local account's password; other devices are signed out (returns how many)."""
    user = await check_current_password(
        session=session, settings=settings, user_id=user_id, password=current, keep_session_id=keep_session_id, ip=ip
    )
    check_password(new, email=user.email or "", min_length=settings.password_min_length)
    user.password_hash = await asyncio.to_thread(credentials.hasher.hash, new)
    session.add(user)
    ended = await sessions.revoke_all(session=session, user_id=user_id, keep_session_id=keep_session_id)
    await audit.record(session=session, action=audit.PASSWORD_CHANGED, user_id=user_id, ip=ip, detail=f"ended {ended}")
    await session.flush()
    return ended


async def check_current_password(
    *, session: AsyncSession, settings: Settings, user_id: int, password: str, keep_session_id: int | None,
    ip: str = "", action: str = audit.PASSWORD_CHANGED,
) -> User:  # fmt: skip
    """Confirm a signed-in local user's password (throttled, settled and committed); InputError when wrong."""
    user = await session.get(User, user_id)
    if user is None or user.provider != "local" or not user.password_hash:
        raise InputError("not_local_account")
    # The current-password check counts towards the account's lockout; the signed-in session is its own
    # source (like a known device), so strangers' failures elsewhere cannot block it.
    source = f"session:{keep_session_id}" if keep_session_id is not None else f"ip:{ip}"
    attempt = await _reserve_check(
        session, settings, kind=login_guard.PASSWORD, email=user.email or "", ip=ip, source=source,
        known=keep_session_id is not None, user_id=user_id,
    )  # fmt: skip
    ok = await asyncio.to_thread(credentials.verify_hash, user.password_hash, password)
    await login_guard.settle(session=session, attempt_id=attempt, ok=ok)
    if not ok:
        await audit.record(session=session, action=action, ok=False, user_id=user_id, ip=ip)
    await session.commit()  # settled even when what follows is refused
    if not ok:
        raise InputError("wrong_password")
    return user


async def delete_account(
    *, session: AsyncSession, user_id: int, actor_id: int, ip: str = "", actor_session_id: int | None = None
) -> None:
    """Delete a user and all their chats, messages and sessions (by themselves, or by an admin who
    re-authenticated in this sign-in session `actor_session_id` within the last minutes)."""
    user = await session.get(User, user_id)
    if user is None:
        raise InputError("account_not_found")
    if actor_id != user_id:
        await _require_admin(session, actor_id)
        await reauth.require_recent(session=session, user_id=actor_id, session_id=actor_session_id)
    if user.role == Role.admin and await _count_admins(session) <= 1:
        raise InputError("last_admin")
    await session.exec(delete(Message).where(col(Message.user_id) == user_id))  # type: ignore[call-overload]
    await session.exec(delete(Conversation).where(col(Conversation.user_id) == user_id))  # type: ignore[call-overload]
    await sessions.notify_ended(await sessions.live_hashes(session=session, user_id=user_id))  # purge their tabs
    await session.exec(delete(AuthSession).where(col(AuthSession.user_id) == user_id))  # type: ignore[call-overload]
    await shred_user_keys(session, user_id)  # crypto-shredding: what old backups hold of them no longer opens
    await tombstones.note_owner_deleted(session=session, user_id=user_id)  # their documents leave the search index
    await session.delete(user)
    await audit.record(
        session=session, action=audit.ACCOUNT_DELETED, user_id=user_id, actor_id=actor_id, email=user.email, ip=ip
    )
    await session.flush()


# --------------------------------------------------------------------------- admin


async def list_users(*, session: AsyncSession, actor_id: int) -> Sequence[User]:
    """Every account, pending ones first (admins only)."""
    await _require_admin(session, actor_id)
    stmt = select(User).where(User.provider != LEGACY_PROVIDER).order_by(col(User.created_at))
    users = (await session.exec(stmt)).all()
    return sorted(users, key=lambda u: u.role != Role.pending)


async def set_role(
    *, session: AsyncSession, actor_id: int, user_id: int, role: str, ip: str = "", actor_session_id: int | None = None
) -> User:
    """Approve, promote or demote a user (admins only); the last admin stays an admin. Every change but approving
    (pending -> user) needs the admin to have re-authenticated in this sign-in session (`actor_session_id`)."""
    await _require_admin(session, actor_id)
    try:
        new = Role(role)
    except ValueError:
        raise InputError("bad_setting") from None
    user = await session.get(User, user_id)
    if user is None or user.provider == LEGACY_PROVIDER:
        raise InputError("account_not_found")
    if user.role == Role.admin and new != Role.admin and await _count_admins(session) <= 1:
        raise InputError("last_admin")
    if user.role != new and not (user.role == Role.pending and new == Role.user):
        await reauth.require_recent(session=session, user_id=actor_id, session_id=actor_session_id)
    if user.role != new:
        await audit.record(
            session=session, action=audit.ROLE_CHANGED, user_id=user_id, actor_id=actor_id, email=user.email, ip=ip,
            detail=f"{user.role}->{new}",
        )  # fmt: skip
        was = user.role
        user.role = new
        session.add(user)
        await session.flush()
        if was == Role.pending and new != Role.pending:
            await webhook_events.emit(
                session, event_type="user.approved", user_id=user_id,
                data={"email": user.email, "role": new.value, "approved_by": actor_id},
            )  # fmt: skip
    return user
