"""The database side of delivery: claiming due rows with a lease, and saving what an attempt brought.

A delivery is claimed with one atomic UPDATE that only matches a row still due — pending and due, or
delivering with an expired lease — so of two dispatchers racing for a row exactly one wins: SQLite
serialises writers (BEGIN IMMEDIATE), and PostgreSQL re-checks the WHERE clause against the row version
the winner committed. The claim writes a fresh `lease_owner`; a result is saved only while that owner
still holds the row, so a dispatcher that was too slow (its lease expired and another one took over)
cannot overwrite the newer attempt.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.services.db import session_scope
from rubin_app.vault.sealing import UnreadableValue
from rubin_app.webhooks import payloads
from rubin_app.webhooks.crypto import SecretBox, SecretBoxError
from rubin_app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

JITTER = 0.2  # each retry delay is multiplied by a random factor in [0.8, 1.2]
CLAIM_ROUNDS = 5  # rounds a dispatcher tries when other dispatchers won every row it saw


@dataclass(frozen=True)
class Job:
    """A claimed delivery, with what sending it needs (secrets decrypted, in memory only)."""

    delivery_id: int
    endpoint_id: int
    lease_owner: str
    attempt: int  # 1 for the first attempt
    url: str
    event_id: str
    event_type: str
    payload: str
    secrets: tuple[str, ...]  # the current secret, then the previous one during a rotation's overlap


@dataclass(frozen=True)
class Outcome:
    """What one attempt brought: an HTTP status (None: no answer) and a short error ("" on success)."""

    status_code: int | None
    error: str
    response_ms: int | None = None


def retry_delay(settings: Settings, attempts: int) -> float | None:
    """Seconds before the next attempt after `attempts` failed ones (jittered); None when the schedule is over."""
    schedule = settings.webhook_retry_delays
    if attempts >= len(schedule):
        return None
    return schedule[attempts] * random.uniform(1 - JITTER, 1 + JITTER)


def _due(now: datetime) -> ColumnElement[bool]:
    """Rows a dispatcher may take: pending and due, or delivering under an expired lease (a crash)."""
    pending = and_(col(WebhookDelivery.status) == DeliveryStatus.pending, col(WebhookDelivery.next_attempt_at) <= now)
    expired = and_(col(WebhookDelivery.status) == DeliveryStatus.delivering, col(WebhookDelivery.lease_until) < now)
    return or_(pending, expired)


def _job(box: SecretBox, delivery: WebhookDelivery, endpoint: WebhookEndpoint, now: datetime, payload: str) -> Job:
    secrets: list[str] = []
    for stored, until in ((endpoint.secret, None), (endpoint.previous_secret, endpoint.previous_secret_expires_at)):
        if stored and (until is None or until > now):
            try:
                secrets.append(box.decrypt(stored))
            except SecretBoxError as exc:
                log.error("webhook endpoint %s: a secret cannot be decrypted (%s)", endpoint.id, exc)
    assert delivery.id is not None and endpoint.id is not None
    return Job(
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        lease_owner=delivery.lease_owner,
        attempt=delivery.attempts,
        url=endpoint.url,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        payload=payload,
        secrets=tuple(secrets),
    )


async def claim_due(database_url: str | None, *, box: SecretBox, lease: timedelta, limit: int) -> list[Job]:
    """Take up to `limit` due deliveries of enabled endpoints under a new lease (attempts + 1).

    Empty only when nothing is due: a round whose candidates were all taken by other dispatchers in the
    meantime is followed by another one (a few at most), which sees the rows still free.
    """
    for _ in range(CLAIM_ROUNDS):
        seen, jobs = await _claim_round(database_url, box=box, lease=lease, limit=limit)
        if jobs or not seen:
            return jobs
    return []


async def _claim_round(
    database_url: str | None, *, box: SecretBox, lease: timedelta, limit: int
) -> tuple[int, list[Job]]:
    """How many due rows were seen, and the jobs of those this round won."""
    now = utcnow()
    async with session_scope(database_url, read_only=True) as s:
        stmt = (
            select(WebhookDelivery.id)
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .where(_due(now), col(WebhookEndpoint.enabled).is_(True))
            .order_by(col(WebhookDelivery.next_attempt_at))
            .limit(limit)
        )
        ids = list((await s.exec(stmt)).all())
    if not ids:
        return 0, []
    owner = uuid.uuid4().hex
    async with session_scope(database_url) as s:
        claim = (
            update(WebhookDelivery)
            .where(col(WebhookDelivery.id).in_(ids), _due(now))
            .values(
                status=DeliveryStatus.delivering,
                lease_until=now + lease,
                lease_owner=owner,
                attempts=col(WebhookDelivery.attempts) + 1,
            )
        )
        await s.exec(claim)
        mine = (
            select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .where(col(WebhookDelivery.lease_owner) == owner)
        )
        pairs = (await s.exec(mine)).all()
        keys = await payloads.ciphers(s, [e for _, e in pairs])
        jobs = []
        for delivery, endpoint in pairs:
            try:
                jobs.append(_job(box, delivery, endpoint, now, payloads.read(keys, endpoint, delivery.payload)))
            except UnreadableValue:  # never send a placeholder: the delivery fails, saying why
                log.error("webhook delivery %s: its payload does not decrypt (encryption key)", delivery.id)
                delivery.status, delivery.lease_until, delivery.lease_owner = DeliveryStatus.failed, None, ""
                delivery.last_error = "the payload cannot be decrypted with this server's encryption key"
                s.add(delivery)
        return len(ids), jobs


async def save_outcome(database_url: str | None, settings: Settings, job: Job, outcome: Outcome) -> str | None:
    """Record an attempt and decide what comes next; the new status, or None when the lease was lost."""
    now = utcnow()
    code = outcome.status_code
    values: dict[str, object] = {
        "last_status_code": code,
        "last_error": outcome.error[:300],
        "last_response_ms": outcome.response_ms,
        "lease_until": None,
        "lease_owner": "",
    }
    if code is not None and 200 <= code < 300:
        values.update(status=DeliveryStatus.succeeded, delivered_at=now)
    elif code == 410:
        values.update(status=DeliveryStatus.disabled)
    elif (delay := retry_delay(settings, job.attempt)) is not None:
        values.update(status=DeliveryStatus.pending, next_attempt_at=now + timedelta(seconds=delay))
    else:
        values.update(status=DeliveryStatus.failed)
    async with session_scope(database_url) as s:
        held = and_(
            col(WebhookDelivery.id) == job.delivery_id,
            col(WebhookDelivery.lease_owner) == job.lease_owner,
            col(WebhookDelivery.status) == DeliveryStatus.delivering,
        )
        result = await s.exec(update(WebhookDelivery).where(held).values(**values))
        if result.rowcount != 1:
            return None
        if code == 410:
            await _disable_gone(s, job.endpoint_id, now)
    return str(values["status"])


async def stop_queued_deliveries(session: AsyncSession, endpoint_id: int) -> None:
    """Mark an endpoint's pending and in-flight deliveries "disabled": they are not sent (again)."""
    queued = col(WebhookDelivery.status).in_([DeliveryStatus.pending, DeliveryStatus.delivering])
    stmt = update(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint_id, queued)
    await session.exec(stmt.values(status=DeliveryStatus.disabled, lease_until=None, lease_owner=""))


async def _disable_gone(session: AsyncSession, endpoint_id: int, now: datetime) -> None:
    """410 Gone: the receiver says the endpoint no longer exists. Disable it; stop its queued deliveries."""
    reason = f"The endpoint answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC; its queued deliveries were stopped."
    stmt = update(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id)
    await session.exec(stmt.values(enabled=False, disabled_reason=reason, updated_at=now))
    await stop_queued_deliveries(session, endpoint_id)


async def next_due_at(database_url: str | None) -> datetime | None:
    """When the earliest pending delivery of an enabled endpoint is due (None: nothing pending)."""
    async with session_scope(database_url, read_only=True) as s:
        stmt = (
            select(func.min(WebhookDelivery.next_attempt_at))
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .where(col(WebhookDelivery.status) == DeliveryStatus.pending, col(WebhookEndpoint.enabled).is_(True))
        )
        due: datetime | None = (await s.exec(stmt)).one()
    return due
