"""The event catalog, and `emit()`: an event becomes pending deliveries in the caller's transaction.

Transactional outbox: `emit()` only inserts rows, in the same transaction as the change that caused the
event, so an event exists exactly when its change was committed; the dispatcher sends it later, never the
request that caused it. Dispatchers of this process are woken as soon as that transaction commits.

Audiences: a *user* event goes to its user's own endpoints (scope "user") and to the instance endpoints
subscribed to it; an *instance* event (a new user, an approval) goes to instance endpoints only.
Payloads carry only the fields listed here (an allow-list): a user's own endpoint gets what the user
could read in the app (the answer text of `message.completed`, a conversation's title); instance
endpoints get ids, models, counts and statuses — never the text of a message or a title (docs/webhooks.md).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import event, or_
from sqlalchemy.orm import Session
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.core.clock import utcnow
from rubin_app.webhooks.models import EndpointScope, WebhookDelivery, WebhookEndpoint
from rubin_app.webhooks.payloads import seal as sealed_payload


class Audience(StrEnum):
    """Who may receive an event type."""

    user = "user"  # the user's own endpoints, and instance endpoints
    instance = "instance"  # instance endpoints only


@dataclass(frozen=True)
class EventType:
    """One event: who receives it and the data fields each kind of endpoint gets (`user_id` is always there)."""

    name: str
    audience: Audience
    description: str
    user_fields: tuple[str, ...]  # what the user's own endpoints receive
    instance_fields: tuple[str, ...]  # what instance endpoints receive: never message text or titles


_MESSAGE = ("conversation_id", "message_id", "model", "source", "prompt_tokens", "completion_tokens", "duration_ms")
CATALOG: dict[str, EventType] = {
    e.name: e
    for e in (
        EventType("message.completed", Audience.user, "An answer finished.", (*_MESSAGE, "content"), _MESSAGE),
        EventType(
            "message.failed",
            Audience.user,
            "An answer ended in an error or was stopped.",
            ("conversation_id", "message_id", "model", "source", "status", "error"),
            ("conversation_id", "message_id", "model", "source", "status", "error"),
        ),
        EventType(
            "conversation.created",
            Audience.user,
            "A conversation was started.",
            ("conversation_id", "title", "model"),
            ("conversation_id", "model"),
        ),
        EventType(
            "conversation.deleted",
            Audience.user,
            "A conversation was deleted.",
            ("conversation_id",),
            ("conversation_id",),
        ),
        EventType(
            "api_key.created",
            Audience.user,
            "An API key was created.",
            ("api_key_id", "name", "prefix", "scopes", "expires_at"),
            ("api_key_id", "scopes", "expires_at"),
        ),
        EventType("api_key.revoked", Audience.user, "An API key was revoked.", ("api_key_id", "name"), ("api_key_id",)),
        EventType(
            "user.created",
            Audience.instance,
            "Someone signed up (or signed in for the first time).",
            (),
            ("email", "display_name", "provider", "role"),
        ),
        EventType(
            "user.approved",
            Audience.instance,
            "An admin approved a waiting user.",
            (),
            ("email", "role", "approved_by"),
        ),
    )
}
TEST_EVENT = "webhook.test"  # sent by service.send_test to one endpoint; not subscribable


def subscribable(scope: str) -> list[str]:
    """The event types an endpoint of `scope` may subscribe to."""
    return sorted(n for n, e in CATALOG.items() if scope == EndpointScope.instance or e.audience == Audience.user)


def new_event_id() -> str:
    """A fresh `msg_…` id: the webhook-id header, the same on every retry of the event."""
    return "msg_" + uuid.uuid4().hex


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def envelope(event_type: str, data: Mapping[str, Any], timestamp: datetime) -> str:
    """The JSON text sent: `{"type", "timestamp", "data"}` (Standard Webhooks), compact, UTF-8."""
    stamp = timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {"type": event_type, "timestamp": stamp, "data": dict(data)}
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{event_type}: data that JSON cannot carry ({exc})") from None


def _checked(event_type: str, data: Mapping[str, Any]) -> EventType:
    spec = CATALOG.get(event_type)
    if spec is None:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    known = set(spec.user_fields) | set(spec.instance_fields)
    missing, unknown = known - set(data), set(data) - known
    if missing or unknown:
        raise ValueError(f"{event_type}: missing data fields {sorted(missing)}, unknown {sorted(unknown)}")
    return spec


async def emit(session: AsyncSession, *, event_type: str, user_id: int, data: Mapping[str, Any]) -> int:
    """Queue `event_type` for every enabled endpoint subscribed to it; returns how many deliveries were queued.

    `user_id` is the user the event is about (the owner of the message, conversation or key; the new or
    approved user); `data` holds exactly the catalog's fields for the event (ValueError otherwise), values
    that JSON can hold (datetimes become ISO 8601). Nothing is sent here and nothing is committed: the rows
    are part of the caller's transaction.
    """
    spec = _checked(event_type, data)
    stmt = select(WebhookEndpoint).where(col(WebhookEndpoint.enabled).is_(True))
    instance = col(WebhookEndpoint.scope) == EndpointScope.instance
    if spec.audience == Audience.user:
        own = (col(WebhookEndpoint.scope) == EndpointScope.user) & (col(WebhookEndpoint.user_id) == user_id)
        stmt = stmt.where(or_(instance, own))
    else:
        stmt = stmt.where(instance)
    endpoints = [e for e in (await session.exec(stmt)).all() if subscribed(e.events, event_type)]
    if not endpoints:
        return 0
    now, event_id = utcnow(), new_event_id()
    payloads: dict[str, str] = {}
    for scope, fields in ((EndpointScope.user, spec.user_fields), (EndpointScope.instance, spec.instance_fields)):
        payloads[scope] = envelope(event_type, {"user_id": user_id, **{f: data[f] for f in fields}}, now)
    for endpoint in endpoints:
        assert endpoint.id is not None
        row = WebhookDelivery(
            endpoint_id=endpoint.id,
            event_id=event_id,
            event_type=event_type,
            payload=await sealed_payload(session, endpoint, payloads[endpoint.scope]),
            next_attempt_at=now,
            created_at=now,
        )
        session.add(row)
    await session.flush()
    wake_after_commit(session)
    return len(endpoints)


def subscribed(events: str, event_type: str) -> bool:
    """Whether an endpoint's `events` ("*" or space-separated types) include `event_type`."""
    names = events.split()
    return "*" in names or event_type in names


# --------------------------------------------------------------------------- waking the dispatchers

_WAKE_KEY = "rubin_webhooks_wake"
_wake_listeners: set[Callable[[], None]] = set()


def add_wake_listener(listener: Callable[[], None]) -> None:
    """Call `listener` (thread-safe, quick) whenever a transaction that queued deliveries commits."""
    _wake_listeners.add(listener)


def remove_wake_listener(listener: Callable[[], None]) -> None:
    """Stop calling `listener`."""
    _wake_listeners.discard(listener)


def wake_after_commit(session: AsyncSession) -> None:
    """Wake this process's dispatchers once the session's transaction commits (never on a rollback)."""
    session.sync_session.info[_WAKE_KEY] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_WAKE_KEY, False):
        for listener in list(_wake_listeners):
            listener()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_WAKE_KEY, None)
