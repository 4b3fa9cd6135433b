"""What the webhook services take and return: the shapes an API or a page shows (never an encrypted secret)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from rubin_app.webhooks.models import EndpointScope, WebhookDelivery, WebhookEndpoint


class EndpointCreate(SQLModel):
    """A new endpoint: where to send, which events ("*": all the scope may receive)."""

    url: str = Field(max_length=2048)
    description: str = Field(default="", max_length=200)
    events: list[str] = Field(default_factory=lambda: ["*"], max_length=50)
    scope: EndpointScope = EndpointScope.user


class EndpointUpdate(SQLModel):
    """Changes to an endpoint; None leaves a field as it is. Enabling again clears the disabled reason."""

    url: str | None = Field(default=None, max_length=2048)
    description: str | None = Field(default=None, max_length=200)
    events: list[str] | None = Field(default=None, max_length=50)
    enabled: bool | None = None


class EndpointPublic(SQLModel):
    """An endpoint as its owner (or, for instance endpoints, an admin) sees it."""

    id: int
    scope: EndpointScope
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str
    previous_secret_expires_at: datetime | None  # until then the old secret signs too (rotation overlap)
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointPublic:
        """The public view of a row."""
        assert endpoint.id is not None
        return cls(
            id=endpoint.id,
            scope=EndpointScope(endpoint.scope),
            url=endpoint.url,
            description=endpoint.description,
            events=endpoint.events.split(),
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            previous_secret_expires_at=endpoint.previous_secret_expires_at if endpoint.previous_secret else None,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class EndpointWithSecret(EndpointPublic):
    """An endpoint just created, or whose secret was just rotated: the only time the secret is shown."""

    secret: str  # whsec_…


class DeliveryPublic(SQLModel):
    """One line of an endpoint's delivery log."""

    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str
    last_response_ms: int | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryPublic:
        """The public view of a row."""
        return cls.model_validate(delivery, from_attributes=True)


class DeliveryDetail(DeliveryPublic):
    """A delivery with the JSON it sends (the owner's own data, or an instance payload for admins)."""

    payload: str


class DeliveryPage(SQLModel):
    """Deliveries newest first; pass `next_before_id` as `before_id` for the next page (None: no more)."""

    items: list[DeliveryPublic]
    next_before_id: int | None
