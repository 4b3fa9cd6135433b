"""A delivery's payload at rest: a user endpoint's payload (it may hold the owner's answers and titles) is
sealed with the owner's data key; an instance endpoint's holds ids and counts only and stays in clear."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.vault.service import get_vault
from rubin_app.webhooks.models import EndpointScope, WebhookEndpoint

FIELD = "webhook_deliveries.payload"


async def seal(session: AsyncSession, endpoint: WebhookEndpoint, payload: str) -> str:
    """The stored form of a payload for this endpoint."""
    vault = get_vault()
    if endpoint.scope != EndpointScope.user or not vault.enabled:
        return payload
    return (await vault.prime(session, endpoint.user_id)).seal(FIELD, payload)


async def prime(session: AsyncSession, endpoints: list[WebhookEndpoint]) -> None:
    """Load the owners' keys before `show` (sync) is used on their deliveries."""
    for user_id in {e.user_id for e in endpoints if e.scope == EndpointScope.user}:
        await get_vault().prime(session, user_id)


def show(endpoint: WebhookEndpoint, stored: str, row: object = None) -> str:
    """The payload's JSON text (the owner's key must be primed: `prime`)."""
    if endpoint.scope != EndpointScope.user:
        return stored
    return get_vault().cipher_cached(endpoint.user_id).show(FIELD, stored, row)
