"""Verify a webhook request from Rubin (Standard Webhooks 1.0) and read its event.

Rubin signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under the endpoint's `whsec_...`
secret; the `standardwebhooks` package checks the signature (any one of several, during a secret's
rotation) and that the timestamp is within 5 minutes of now. Pass the raw body exactly as received:
parsing and re-serialising the JSON changes the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from rubin_client.models import parse_time

ID_HEADER = "webhook-id"


class InvalidWebhookError(WebhookVerificationError):
    """The request is not a genuine, fresh Rubin event: a signature that matches no secret, a missing
    header, a timestamp more than 5 minutes off, a malformed secret, or a body that is not an event.
    Answer such a request with 400 and do nothing else."""


@dataclass(frozen=True)
class WebhookEvent:
    """A verified event: `id` (the `webhook-id`, the same on every retry: drop one already handled),
    `type` (e.g. `message.completed`), `timestamp` (when it happened, UTC) and `data` (always with
    `user_id`; the fields per type are listed in Rubin's docs/webhooks.md)."""

    id: str
    type: str
    timestamp: datetime
    data: dict[str, Any] = field(default_factory=dict)


def verify_webhook(secret: str, body: bytes | str, headers: Mapping[str, str]) -> WebhookEvent:
    """The event of a webhook request if it is signed with `secret` and fresh; else InvalidWebhookError.

    `body` is the raw request body, `headers` the request's headers (any mapping; names in any case).
    """
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    try:
        webhook = Webhook(secret)
    except Exception as exc:  # empty or not base64: the library raises several kinds
        raise InvalidWebhookError(f"the webhook secret is not valid ({exc})") from exc
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        payload = webhook.verify(text, lowered)
    except WebhookVerificationError as exc:
        raise InvalidWebhookError(f"webhook verification failed: {exc}") from exc
    except (ValueError, TypeError) as exc:  # malformed: a signature without "v1,", bad base64, not UTF-8, not JSON
        raise InvalidWebhookError(f"webhook verification failed: malformed request ({exc})") from exc
    return _event(lowered[ID_HEADER], payload)


def _event(event_id: str, payload: Any) -> WebhookEvent:
    if not isinstance(payload, dict):
        raise InvalidWebhookError("the webhook body is not a JSON object")
    kind, stamp, data = payload.get("type"), payload.get("timestamp"), payload.get("data")
    if not isinstance(kind, str) or not isinstance(stamp, str) or not isinstance(data, dict):
        raise InvalidWebhookError("the webhook body is not an event: it needs 'type', 'timestamp' and 'data'")
    try:
        when = parse_time(stamp)
    except ValueError as exc:
        raise InvalidWebhookError(f"the event's timestamp is not ISO 8601: {stamp!r}") from exc
    return WebhookEvent(id=event_id, type=kind, timestamp=when, data=data)
