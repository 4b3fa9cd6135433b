"""Managing webhook endpoints and their deliveries, always as someone (`Actor`).

Every query is filtered by the actor: a user sees and changes only their own endpoints ("user" scope);
instance endpoints are for admins only. Someone else's endpoint id is not found, exactly like an id that
does not exist. Nothing here commits: the caller's session scope does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.accounts import groups
from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.core.outbound import OutboundRefused, check_url, parse_networks
from rubin_app.models import Role, User
from rubin_app.webhooks import payloads
from rubin_app.webhooks.crypto import SecretBox, new_signing_secret
from rubin_app.webhooks.errors import (
    DeliveryNotFound,
    EndpointDisabled,
    EndpointNotFound,
    InvalidEndpoint,
    TooManyEndpoints,
    WebhookForbidden,
    WebhooksNotAllowed,
)
from rubin_app.webhooks.events import TEST_EVENT, envelope, new_event_id, subscribable, wake_after_commit
from rubin_app.webhooks.models import DeliveryStatus, EndpointScope, WebhookDelivery, WebhookEndpoint
from rubin_app.webhooks.outbox import stop_queued_deliveries
from rubin_app.webhooks.schemas import (
    DeliveryDetail,
    DeliveryPage,
    DeliveryPublic,
    EndpointCreate,
    EndpointPublic,
    EndpointUpdate,
    EndpointWithSecret,
)

MAX_ENDPOINTS = 20  # per user (user scope), and for the instance
MAX_PAGE = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user, and whether they are an admin."""

    user_id: int
    is_admin: bool = False

    @classmethod
    def of(cls, user: User) -> Actor:
        """The actor for a signed-in user."""
        assert user.id is not None
        return cls(user_id=user.id, is_admin=user.role == Role.admin)


def _visible(actor: Actor) -> ColumnElement[bool]:
    """The endpoints `actor` may see: their own user endpoints; instance endpoints if an admin."""
    own = (col(WebhookEndpoint.scope) == EndpointScope.user) & (col(WebhookEndpoint.user_id) == actor.user_id)
    if not actor.is_admin:
        return own
    return own | (col(WebhookEndpoint.scope) == EndpointScope.instance)


async def _endpoint(session: AsyncSession, actor: Actor, endpoint_id: int) -> WebhookEndpoint:
    stmt = select(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id, _visible(actor))
    endpoint = (await session.exec(stmt)).first()
    if endpoint is None:
        raise EndpointNotFound("no such webhook endpoint")
    return endpoint


async def check_endpoint_url(url: str, settings: Settings) -> str:
    """The URL, stripped, once the outbound guard accepted it; InvalidEndpoint otherwise.

    It resolves the host name (DNS can take seconds): create_endpoint and update_endpoint call it before
    their first query. A caller whose session already holds a write transaction (an SQLite write lock)
    can call it first, before opening that session, to fail fast; the second check is then cheap.
    """
    url = url.strip()
    try:
        await check_url(
            url,
            allow_private=settings.webhook_allow_private,
            allowed_networks=parse_networks(settings.webhook_allowed_networks),
        )
    except OutboundRefused as exc:
        hint = " (an admin may allow private targets: WEBHOOK_ALLOW_PRIVATE)" if "address" in exc.reason else ""
        raise InvalidEndpoint(f"URL refused: {exc.reason}{hint}") from None
    return url


def _events(names: list[str], scope: str) -> str:
    """The stored form of a subscription: "*" or the sorted, space-separated event types."""
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise InvalidEndpoint("choose at least one event (or * for all)")
    if "*" in names:
        return "*"
    allowed = set(subscribable(scope))
    bad = sorted(set(names) - allowed)
    if bad:
        raise InvalidEndpoint(
            f"{'these events are' if len(bad) > 1 else 'this event is'} not available: {', '.join(bad)}"
        )
    return " ".join(sorted(set(names)))


def _description(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()[:200]


async def create_endpoint(
    session: AsyncSession, *, actor: Actor, settings: Settings, secret_key: str, data: EndpointCreate
) -> EndpointWithSecret:
    """A new endpoint of `actor` (instance scope: admins only); its `whsec_…` secret is returned this once."""
    if data.scope == EndpointScope.instance and not actor.is_admin:
        raise WebhookForbidden("only admins manage instance webhooks")
    if not (await groups.effective(session=session, user_id=actor.user_id)).webhooks:
        raise WebhooksNotAllowed("your groups do not allow webhooks: ask an administrator")
    events = _events(data.events, data.scope)
    url = await check_endpoint_url(data.url, settings)
    mine = col(WebhookEndpoint.scope) == data.scope
    if data.scope == EndpointScope.user:
        mine = mine & (col(WebhookEndpoint.user_id) == actor.user_id)
    count = (await session.exec(select(func.count()).select_from(WebhookEndpoint).where(mine))).one()
    if count >= MAX_ENDPOINTS:
        raise TooManyEndpoints(f"at most {MAX_ENDPOINTS} webhook endpoints")
    secret = new_signing_secret()
    endpoint = WebhookEndpoint(
        user_id=actor.user_id,
        scope=data.scope,
        url=url,
        description=_description(data.description),
        events=events,
        secret=SecretBox(secret_key).encrypt(secret),
    )
    session.add(endpoint)
    await session.flush()
    return EndpointWithSecret(**EndpointPublic.of(endpoint).model_dump(), secret=secret)


async def list_endpoints(
    session: AsyncSession, *, actor: Actor, scope: EndpointScope = EndpointScope.user
) -> list[EndpointPublic]:
    """The actor's own endpoints (scope "user"), or the instance's (scope "instance", admins only)."""
    if scope == EndpointScope.instance and not actor.is_admin:
        raise WebhookForbidden("only admins manage instance webhooks")
    stmt = select(WebhookEndpoint).where(_visible(actor), col(WebhookEndpoint.scope) == scope)
    rows = (await session.exec(stmt.order_by(col(WebhookEndpoint.id)))).all()
    return [EndpointPublic.of(e) for e in rows]


async def get_endpoint(session: AsyncSession, *, actor: Actor, endpoint_id: int) -> EndpointPublic:
    """One endpoint the actor may see; EndpointNotFound otherwise."""
    return EndpointPublic.of(await _endpoint(session, actor, endpoint_id))


async def update_endpoint(
    session: AsyncSession, *, actor: Actor, settings: Settings, endpoint_id: int, data: EndpointUpdate
) -> EndpointPublic:
    """Change URL, description, events or enabled. Disabling stops the endpoint's queued deliveries."""
    url = await check_endpoint_url(data.url, settings) if data.url is not None else None
    endpoint = await _endpoint(session, actor, endpoint_id)
    if url is not None:
        endpoint.url = url
    if data.description is not None:
        endpoint.description = _description(data.description)
    if data.events is not None:
        endpoint.events = _events(data.events, endpoint.scope)
    if data.enabled is True and not endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason = True, ""
    elif data.enabled is False and endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason = False, "Disabled by a user."
        await stop_queued_deliveries(session, endpoint_id)
    endpoint.updated_at = utcnow()
    session.add(endpoint)
    await session.flush()
    return EndpointPublic.of(endpoint)


async def delete_endpoint(session: AsyncSession, *, actor: Actor, endpoint_id: int) -> None:
    """Delete an endpoint and its delivery log."""
    endpoint = await _endpoint(session, actor, endpoint_id)
    await session.exec(delete(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint.id))


async def rotate_secret(
    session: AsyncSession, *, actor: Actor, settings: Settings, secret_key: str, endpoint_id: int
) -> EndpointWithSecret:
    """A new secret (returned this once); the current one keeps signing too for WEBHOOK_SECRET_OVERLAP_HOURS."""
    endpoint = await _endpoint(session, actor, endpoint_id)
    secret = new_signing_secret()
    overlap = timedelta(hours=settings.webhook_secret_overlap_hours)
    now = utcnow()
    endpoint.previous_secret = endpoint.secret if overlap else None
    endpoint.previous_secret_expires_at = now + overlap if overlap else None
    endpoint.secret = SecretBox(secret_key).encrypt(secret)
    endpoint.updated_at = now
    session.add(endpoint)
    await session.flush()
    return EndpointWithSecret(**EndpointPublic.of(endpoint).model_dump(), secret=secret)


async def list_deliveries(
    session: AsyncSession, *, actor: Actor, endpoint_id: int, limit: int = 50, before_id: int | None = None
) -> DeliveryPage:
    """An endpoint's deliveries, newest first, `limit` (1-100) at a time, older than `before_id` if given."""
    endpoint = await _endpoint(session, actor, endpoint_id)
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint.id)
    if before_id is not None:
        stmt = stmt.where(col(WebhookDelivery.id) < before_id)
    rows = (await session.exec(stmt.order_by(col(WebhookDelivery.id).desc()).limit(limit + 1))).all()
    items = [DeliveryPublic.of(d) for d in rows[:limit]]
    return DeliveryPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)


async def _delivery(session: AsyncSession, actor: Actor, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    endpoint = await _endpoint(session, actor, endpoint_id)
    stmt = select(WebhookDelivery).where(
        col(WebhookDelivery.id) == delivery_id, col(WebhookDelivery.endpoint_id) == endpoint.id
    )
    delivery = (await session.exec(stmt)).first()
    if delivery is None:
        raise DeliveryNotFound("no such webhook delivery")
    return delivery


async def get_delivery(session: AsyncSession, *, actor: Actor, endpoint_id: int, delivery_id: int) -> DeliveryDetail:
    """One delivery with its payload."""
    delivery = await _delivery(session, actor, endpoint_id, delivery_id)
    endpoint = await _endpoint(session, actor, endpoint_id)
    keys = await payloads.ciphers(session, [endpoint])
    detail = DeliveryDetail.model_validate(delivery, from_attributes=True)
    return detail.model_copy(update={"payload": payloads.show(keys, endpoint, delivery.payload, delivery.id)})


async def redeliver(session: AsyncSession, *, actor: Actor, endpoint_id: int, delivery_id: int) -> DeliveryPublic:
    """Queue a past delivery again now, with a fresh retry schedule. The webhook-id stays the same, so a
    receiver that already processed it can tell; one still queued or in flight is left as it is."""
    delivery = await _delivery(session, actor, endpoint_id, delivery_id)
    endpoint = await _endpoint(session, actor, endpoint_id)
    if not endpoint.enabled:
        raise EndpointDisabled("the endpoint is disabled: enable it first")
    if delivery.status not in (DeliveryStatus.pending, DeliveryStatus.delivering):
        delivery.status, delivery.attempts, delivery.next_attempt_at = DeliveryStatus.pending, 0, utcnow()
        delivery.lease_until, delivery.lease_owner, delivery.delivered_at = None, "", None
        session.add(delivery)
        await session.flush()
        wake_after_commit(session)
    return DeliveryPublic.of(delivery)


async def send_test(session: AsyncSession, *, actor: Actor, endpoint_id: int) -> DeliveryPublic:
    """Queue a `webhook.test` event to this endpoint only (whatever its subscriptions)."""
    endpoint = await _endpoint(session, actor, endpoint_id)
    if not endpoint.enabled:
        raise EndpointDisabled("the endpoint is disabled: enable it first")
    assert endpoint.id is not None
    now = utcnow()
    data = {"user_id": actor.user_id, "endpoint_id": endpoint.id, "message": "A test event from Rubin."}
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        event_id=new_event_id(),
        event_type=TEST_EVENT,
        payload=await payloads.seal(session, endpoint, envelope(TEST_EVENT, data, now)),
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    await session.flush()
    wake_after_commit(session)
    return DeliveryPublic.of(delivery)
