"""A delivery's payload at rest: a user endpoint's payload (it may hold the owner's answers and titles) is
sealed with the owner's data key; an instance endpoint's holds ids and counts only and stays in clear."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.vault.sealing import UserCipher
from rubin_app.vault.service import get_vault
from rubin_app.webhooks.models import EndpointScope, WebhookEndpoint

FIELD = "webhook_deliveries.payload"


async def seal(session: AsyncSession, endpoint: WebhookEndpoint, payload: str) -> str:
    """The stored form of a payload for this endpoint."""
    vault = get_vault()
    if endpoint.scope != EndpointScope.user or not vault.enabled:
        return payload
    return (await vault.prime(session, endpoint.user_id)).seal(FIELD, payload)


async def ciphers(session: AsyncSession, endpoints: list[WebhookEndpoint]) -> dict[int, UserCipher]:
    """The owners' ciphers for `show` and `read`."""
    vault = get_vault()
    owners = {e.user_id for e in endpoints if e.scope == EndpointScope.user}
    return {user_id: await vault.prime(session, user_id) for user_id in owners}


def show(keys: dict[int, UserCipher], endpoint: WebhookEndpoint, stored: str, row: object = None) -> str:
    """The payload's JSON text for its owner's eyes (a marker when it does not decrypt)."""
    if endpoint.scope != EndpointScope.user:
        return stored
    return keys[endpoint.user_id].show(FIELD, stored, row)


def read(keys: dict[int, UserCipher], endpoint: WebhookEndpoint, stored: str) -> str:
    """The payload to send: UnreadableValue when it does not decrypt (never a placeholder on the wire)."""
    if endpoint.scope != EndpointScope.user:
        return stored
    return keys[endpoint.user_id].open(FIELD, stored)
