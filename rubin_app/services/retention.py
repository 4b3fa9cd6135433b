"""Retention: chats are deleted after N days without activity (the instance's default, or a user's shorter
choice); audit, usage and finished webhook delivery rows after their own periods. Deleted in small batches
(one short transaction each), never a chat whose answer is streaming; each run writes one audit row."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.models import (
    AppSetting,
    AuditEvent,
    Conversation,
    Message,
    MessageStatus,
    Role,
    UsageRecord,
    User,
    WebhookDelivery,
)
from rubin_app.services import audit
from rubin_app.services.chats import InputError
from rubin_app.webhooks.models import DeliveryStatus

log = logging.getLogger(__name__)

POLICY_KEY = "chat_retention_days"  # app_settings: the admin's instance default (absent: CHAT_RETENTION_DAYS)
MAX_DAYS = 36500
USER_CHOICES = (1, 7, 30, 90, 180, 365)  # what the account page offers (any 1..MAX_DAYS is accepted)
CHAT_BATCH = 100  # conversations per transaction (their messages go with them)
ROW_BATCH = 1000  # audit / usage / delivery rows per transaction
FINISHED_DELIVERIES = (DeliveryStatus.succeeded, DeliveryStatus.failed, DeliveryStatus.disabled)

Scope = Callable[[], AbstractAsyncContextManager[AsyncSession]]


@dataclass
class Report:
    """What one run deleted."""

    chats: int = 0
    messages: int = 0
    audit: int = 0
    usage: int = 0
    webhook_deliveries: int = 0

    def summary(self) -> str:
        """`chats=1 messages=4 …` (the audit row's detail and the command's output)."""
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


# --------------------------------------------------------------------------- policy


async def instance_days(*, session: AsyncSession, settings: Settings) -> int:
    """The instance's chat retention in days (0: forever): the admin's choice, else CHAT_RETENTION_DAYS."""
    row = await session.get(AppSetting, POLICY_KEY)
    return int(json.loads(row.value)) if row is not None and row.value else settings.chat_retention_days


async def set_instance_days(*, session: AsyncSession, actor_id: int, days: int, ip: str = "") -> int:
    """Set the instance's chat retention (admins only); 0 keeps chats forever."""
    actor = await session.get(User, actor_id)
    if actor is None or actor.role != Role.admin:
        raise InputError("admin_only")
    if not 0 <= days <= MAX_DAYS:
        raise InputError("bad_retention", max=MAX_DAYS)
    row = await session.get(AppSetting, POLICY_KEY) or AppSetting(key=POLICY_KEY)
    row.value, row.updated_at = json.dumps(days), utcnow()
    session.add(row)
    await audit.record(
        session=session, action=audit.POLICY_CHANGED, user_id=actor_id, actor_id=actor_id, ip=ip,
        detail=f"{POLICY_KEY}={days}",
    )  # fmt: skip
    await session.flush()
    return days


def effective_days(instance: int, choice: int | None) -> int:
    """How long a user's chats are kept: their choice when shorter than the instance's (0: forever)."""
    if choice is None:
        return instance
    return choice if instance == 0 else min(choice, instance)


async def user_days(*, session: AsyncSession, settings: Settings, user_id: int) -> tuple[int | None, int, int]:
    """(the user's choice or None, the instance's days, the days in force for them)."""
    user = await session.get(User, user_id)
    choice = user.chat_retention_days if user is not None else None
    instance = await instance_days(session=session, settings=settings)
    return choice, instance, effective_days(instance, choice)


async def set_user_days(*, session: AsyncSession, settings: Settings, user_id: int, days: int | None) -> int:
    """Set the user's own retention (None: the instance's); it may only be shorter. Returns the days in force."""
    user = await session.get(User, user_id)
    if user is None:
        raise InputError("account_not_found")
    instance = await instance_days(session=session, settings=settings)
    if days is not None and not (1 <= days <= MAX_DAYS and (instance == 0 or days <= instance)):
        raise InputError("bad_retention", max=instance or MAX_DAYS)
    user.chat_retention_days = days
    session.add(user)
    await session.flush()
    return effective_days(instance, days)


# --------------------------------------------------------------------------- deletion


def _not_streaming() -> ColumnElement[bool]:
    """No answer of the conversation is being generated (on any worker: its row says `streaming`)."""
    streaming = exists().where(
        col(Message.conversation_id) == col(Conversation.id), col(Message.status) == MessageStatus.streaming
    )
    return ~streaming


async def _expiry_rules(session: AsyncSession, instance: int, now: datetime) -> list[ColumnElement[bool]]:
    """One condition per group of users with the same retention: their chats untouched since its cutoff."""
    chosen = select(User.chat_retention_days).where(col(User.chat_retention_days).is_not(None)).distinct()
    choices = (await session.exec(chosen)).all()
    groups: list[tuple[ColumnElement[bool], int]] = [(col(User.chat_retention_days).is_(None), instance)]
    groups += [(col(User.chat_retention_days) == c, effective_days(instance, c)) for c in choices if c]
    return [
        and_(
            col(Conversation.user_id).in_(select(User.id).where(who)),
            col(Conversation.updated_at) < now - timedelta(days=days),
        )
        for who, days in groups
        if days > 0
    ]


async def _delete_chats(scope: Scope, rule: ColumnElement[bool], report: Report) -> None:
    """Delete the conversations matching `rule` (and their messages), a batch per transaction."""
    while True:
        async with scope() as session:
            ids = list(
                (
                    await session.exec(
                        select(Conversation.id).where(rule, _not_streaming()).order_by(col(Conversation.updated_at))
                        .limit(CHAT_BATCH)
                    )
                ).all()
            )  # fmt: skip
            if not ids:
                return
            sizes = dict(
                (
                    await session.exec(
                        select(Message.conversation_id, func.count()).where(col(Message.conversation_id).in_(ids))
                        .group_by(col(Message.conversation_id))
                    )
                ).all()
            )  # fmt: skip
            # The rule is checked again in the delete: a chat used (or answering) since the select stays.
            gone = set(
                (
                    await session.exec(
                        delete(Conversation)
                        .where(col(Conversation.id).in_(ids), rule, _not_streaming())
                        .returning(col(Conversation.id))
                        .execution_options(synchronize_session=False)
                    )
                ).scalars()
            )
            if gone:  # gone already by the foreign key's cascade; explicit for a database that does not enforce it
                await session.exec(delete(Message).where(col(Message.conversation_id).in_(gone)))
            report.chats += len(gone)
            report.messages += sum(sizes.get(cid, 0) for cid in gone)
        if len(ids) < CHAT_BATCH:
            return


async def _delete_rows(scope: Scope, table: Any, *where: ColumnElement[bool]) -> int:
    """Delete the rows of `table` matching `where`, ROW_BATCH per transaction; how many."""
    total = 0
    while True:
        async with scope() as session:
            ids = list((await session.exec(select(table.id).where(*where).limit(ROW_BATCH))).all())
            if ids:
                await session.exec(delete(table).where(table.id.in_(ids)))
        total += len(ids)
        if len(ids) < ROW_BATCH:
            return total


async def run(*, scope: Scope, settings: Settings, now: datetime | None = None) -> Report:
    """Delete everything past its retention; write one audit row with the counts."""
    now = now or utcnow()
    report = Report()
    async with scope() as session:
        instance = await instance_days(session=session, settings=settings)
        rules = await _expiry_rules(session, instance, now)
    for rule in rules:
        await _delete_chats(scope, rule, report)
    if settings.audit_retention_days:
        cutoff = now - timedelta(days=settings.audit_retention_days)
        report.audit = await _delete_rows(scope, AuditEvent, col(AuditEvent.created_at) < cutoff)
    if settings.usage_retention_days:
        cutoff = now - timedelta(days=settings.usage_retention_days)
        report.usage = await _delete_rows(scope, UsageRecord, col(UsageRecord.created_at) < cutoff)
    if settings.webhook_delivery_retention_days:
        cutoff = now - timedelta(days=settings.webhook_delivery_retention_days)
        report.webhook_deliveries = await _delete_rows(
            scope, WebhookDelivery, col(WebhookDelivery.created_at) < cutoff,
            col(WebhookDelivery.status).in_([s.value for s in FINISHED_DELIVERIES]),
        )  # fmt: skip
    async with scope() as session:
        await audit.record(session=session, action=audit.RETENTION_RUN, detail=report.summary())
    return report
