"""The webhook tables: endpoints (where to send, which events, the signing secret) and deliveries.

A delivery row is both the durable outbox (written in the transaction that caused the event, sent later
by the dispatcher) and the delivery log (status, attempts, the last answer) a user reads.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow


class EndpointScope(StrEnum):
    """Whose events an endpoint receives: its owner's ("user"), or the instance's (admins only)."""

    user = "user"
    instance = "instance"


class DeliveryStatus(StrEnum):
    """Where a delivery stands."""

    pending = "pending"  # waiting for its next attempt (next_attempt_at)
    delivering = "delivering"  # a dispatcher holds its lease and is sending it
    succeeded = "succeeded"  # the endpoint answered 2xx
    failed = "failed"  # every attempt of the retry schedule failed: given up
    disabled = "disabled"  # its endpoint was disabled (by its owner, or by a 410 Gone) before it was sent


class WebhookEndpoint(SQLModel, table=True):
    """A URL that receives signed events. The secret is stored encrypted (webhooks/crypto.py)."""

    __tablename__ = "webhook_endpoints"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")  # owner (an admin for instance)
    scope: str = Field(default=EndpointScope.user, max_length=10, index=True)  # EndpointScope (plain text column)
    url: str = Field(max_length=2048)
    description: str = Field(default="", max_length=200)
    events: str = Field(default="*", max_length=1000)  # space-separated event types, or "*"
    enabled: bool = Field(default=True)
    secret: str = Field(max_length=200)  # encrypted whsec_… ("v1.<key id>.<nonce+ciphertext>")
    previous_secret: str | None = Field(default=None, max_length=200)  # encrypted; still signs until…
    previous_secret_expires_at: datetime | None = Field(default=None)
    disabled_reason: str = Field(default="", max_length=300)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint: the outbox row and its delivery log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="webhook_endpoints.id", index=True, ondelete="CASCADE")
    event_id: str = Field(max_length=40)  # "msg_…": the webhook-id header, the same on every retry
    event_type: str = Field(max_length=60)
    payload: str = Field(sa_type=Text)  # the exact JSON text that is signed and sent
    status: str = Field(default=DeliveryStatus.pending, max_length=12)  # DeliveryStatus (plain text column)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow)  # indexed with status: ix_webhook_deliveries_due
    lease_until: datetime | None = Field(default=None)
    lease_owner: str = Field(default="", max_length=40)  # the claim that holds the lease (a crash leaves it)
    last_status_code: int | None = Field(default=None)
    last_error: str = Field(default="", max_length=300)  # short, never a secret or the payload
    last_response_ms: int | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = Field(default=None)
