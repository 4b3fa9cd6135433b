"""The audit trail: a table row and a structured log line per security event; lockouts read it back."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.models import AuditEvent

log = logging.getLogger("rubin_app.audit")

# Actions (the admin page translates them).
SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"  # a wrong password: counts towards lockouts
PROVIDER_FAILED = "provider_failed"  # a provider sign-in that failed: audited, not a password guess
SIGN_OUT = "sign_out"
SIGN_OUT_ALL = "sign_out_all"
SIGN_UP = "sign_up"
ROLE_CHANGED = "role_changed"
PASSWORD_CHANGED = "password_changed"
ACCOUNT_DELETED = "account_deleted"
POLICY_CHANGED = "policy_changed"
LOCKED_OUT = "locked_out"
SIGN_UP_TAKEN = "sign_up_taken"  # a sign-up with an existing account's email (shown to its owner)
RETENTION_RUN = "retention_run"  # one run of the retention job: what it deleted (services/retention.py)
SESSION_ENDED = "session_ended"  # a user ended one of their other sessions (account page)
TWO_FACTOR_ON = "two_factor_on"
TWO_FACTOR_OFF = "two_factor_off"
RECOVERY_CODE_USED = "recovery_code_used"
RECOVERY_CODES_NEW = "recovery_codes_new"  # regenerated: the old ones no longer work
PASSKEY_ADDED = "passkey_added"
PASSKEY_REMOVED = "passkey_removed"


async def record(
    *,
    session: AsyncSession,
    action: str,
    ok: bool = True,
    user_id: int | None = None,
    actor_id: int | None = None,
    email: str | None = None,
    ip: str = "",
    detail: str = "",
) -> AuditEvent:
    """Write one audit event (in the caller's transaction) and log it without secrets."""
    event = AuditEvent(
        action=action, ok=ok, user_id=user_id, actor_id=actor_id, email=email, ip=ip[:64], detail=detail[:500]
    )
    session.add(event)
    log.info(
        "audit action=%s ok=%s user=%s actor=%s email=%s ip=%s detail=%s",
        action, ok, user_id, actor_id, email or "-", ip or "-", detail or "-",
    )  # fmt: skip
    return event


async def list_events(
    *, session: AsyncSession, limit: int = 200, offset: int = 0, action: str = "", text: str = "",
    failures_only: bool = False,
) -> Sequence[AuditEvent]:  # fmt: skip
    """The newest audit events matching the filters, a page at a time (admins only: the caller checks the role).

    `action` is an exact action name; `text` a case-insensitive piece of the email or the IP (taken literally:
    % and _ match themselves); `failures_only` keeps events with ok=False.
    """
    stmt = select(AuditEvent)
    if action:
        stmt = stmt.where(AuditEvent.action == action[:64])
    if text := text.strip().lower()[:254]:
        email = func.lower(func.coalesce(AuditEvent.email, ""))
        stmt = stmt.where(email.contains(text, autoescape=True) | col(AuditEvent.ip).contains(text, autoescape=True))
    if failures_only:
        stmt = stmt.where(col(AuditEvent.ok).is_(False))
    stmt = stmt.order_by(col(AuditEvent.id).desc()).offset(max(0, offset)).limit(max(1, min(limit, 500)))
    return (await session.exec(stmt)).all()


async def list_actions(*, session: AsyncSession) -> list[str]:
    """Every action name the log holds, for the admin filter."""
    return sorted((await session.exec(select(AuditEvent.action).distinct())).all())
