"""/api/v1/webhooks: a user's endpoints for their own events; with an `admin` key, the instance's endpoints.

Another user's endpoint id is a 404. Secrets are returned only when created or rotated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.api.deps import key_principal
from rubin_app.core.errors import ApiError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.webhooks import events, service
from rubin_app.webhooks.models import EndpointScope
from rubin_app.webhooks.schemas import (
    DeliveryDetail,
    DeliveryPage,
    DeliveryPublic,
    EndpointCreate,
    EndpointPublic,
    EndpointUpdate,
    EndpointWithSecret,
)  # fmt: skip

Key = Annotated[KeyPrincipal, Depends(key_principal)]
router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _actor(key: KeyPrincipal) -> service.Actor:
    return service.Actor(user_id=key.user_id, is_admin=key.allows("admin"))


@router.get("/events")
async def event_catalog(key: Key, scope: EndpointScope = EndpointScope.user) -> dict[str, list[dict[str, object]]]:
    """The events an endpoint of `scope` can subscribe to, with the data fields it receives."""
    if scope == EndpointScope.instance and not key.allows("admin"):
        raise ApiError("insufficient_scope", "instance webhooks need the 'admin' scope")
    fields = "instance_fields" if scope == EndpointScope.instance else "user_fields"
    return {
        "data": [
            {"type": name, "description": events.CATALOG[name].description,
             "fields": ["user_id", *getattr(events.CATALOG[name], fields)]}
            for name in events.subscribable(scope)
        ]
    }  # fmt: skip


@router.get("", response_model=list[EndpointPublic])
async def list_endpoints(key: Key, scope: EndpointScope = EndpointScope.user) -> list[EndpointPublic]:
    """The user's endpoints (or, with an admin key and `scope=instance`, the instance's)."""
    async with session_scope(read_only=True) as session:
        return await service.list_endpoints(session, actor=_actor(key), scope=scope)


@router.post("", response_model=EndpointWithSecret, status_code=201)
async def create_endpoint(body: EndpointCreate, key: Key) -> EndpointWithSecret:
    """A new endpoint; its `whsec_…` secret is in this answer only."""
    rt = get_runtime()
    await service.check_endpoint_url(body.url, rt.settings)  # before the write session: DNS takes time
    async with session_scope() as session:
        return await service.create_endpoint(
            session, actor=_actor(key), settings=rt.settings, secret_key=rt.secret_key, data=body
        )


@router.get("/{endpoint_id}", response_model=EndpointPublic)
async def get_endpoint(endpoint_id: int, key: Key) -> EndpointPublic:
    """One endpoint."""
    async with session_scope(read_only=True) as session:
        return await service.get_endpoint(session, actor=_actor(key), endpoint_id=endpoint_id)


@router.patch("/{endpoint_id}", response_model=EndpointPublic)
async def update_endpoint(endpoint_id: int, body: EndpointUpdate, key: Key) -> EndpointPublic:
    """Change the URL, description, events, or switch it on/off."""
    rt = get_runtime()
    if body.url is not None:
        await service.check_endpoint_url(body.url, rt.settings)
    async with session_scope() as session:
        return await service.update_endpoint(
            session, actor=_actor(key), settings=rt.settings, endpoint_id=endpoint_id, data=body
        )


@router.delete("/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: int, key: Key) -> Response:
    """Delete an endpoint and its delivery log."""
    async with session_scope() as session:
        await service.delete_endpoint(session, actor=_actor(key), endpoint_id=endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret)
async def rotate_secret(endpoint_id: int, key: Key) -> EndpointWithSecret:
    """A new secret; the old one keeps signing too for WEBHOOK_SECRET_OVERLAP_HOURS."""
    rt = get_runtime()
    async with session_scope() as session:
        return await service.rotate_secret(
            session, actor=_actor(key), settings=rt.settings, secret_key=rt.secret_key, endpoint_id=endpoint_id
        )


@router.post("/{endpoint_id}/test", response_model=DeliveryPublic, status_code=202)
async def send_test(endpoint_id: int, key: Key) -> DeliveryPublic:
    """Queue a `webhook.test` event to this endpoint."""
    async with session_scope() as session:
        return await service.send_test(session, actor=_actor(key), endpoint_id=endpoint_id)


@router.get("/{endpoint_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    endpoint_id: int, key: Key, before_id: int | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> DeliveryPage:
    """The delivery log, newest first (`before_id` pages back)."""
    async with session_scope(read_only=True) as session:
        return await service.list_deliveries(
            session, actor=_actor(key), endpoint_id=endpoint_id, limit=limit, before_id=before_id
        )


@router.get("/{endpoint_id}/deliveries/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(endpoint_id: int, delivery_id: int, key: Key) -> DeliveryDetail:
    """One delivery with its payload."""
    async with session_scope(read_only=True) as session:
        return await service.get_delivery(session, actor=_actor(key), endpoint_id=endpoint_id, delivery_id=delivery_id)


@router.post("/{endpoint_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryPublic, status_code=202)
async def redeliver(endpoint_id: int, delivery_id: int, key: Key) -> DeliveryPublic:
    """Send a past delivery again (same webhook-id, attempts from zero)."""
    async with session_scope() as session:
        return await service.redeliver(session, actor=_actor(key), endpoint_id=endpoint_id, delivery_id=delivery_id)
