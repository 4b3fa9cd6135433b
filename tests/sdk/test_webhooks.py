"""verify_webhook: requests signed as Rubin's dispatcher signs them (its own envelope and signature functions)
and as the standardwebhooks library signs them are accepted; a tampered body, a stale or future timestamp,
another secret, a missing or malformed header and a body that is not an event are refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from rubin_client import InvalidWebhookError, WebhookEvent, verify_webhook
from standardwebhooks import Webhook, WebhookVerificationError

from rubin_app.webhooks.crypto import new_signing_secret
from rubin_app.webhooks.delivery import signature_headers
from rubin_app.webhooks.events import envelope, new_event_id

COMPLETED = {
    "user_id": 4, "conversation_id": "c0ffee", "message_id": 812, "model": "gemma-3-270m", "source": "rest",
    "prompt_tokens": 64, "completion_tokens": 128, "duration_ms": 2310, "content": "Рубины — красные. 💎",
}  # fmt: skip


def signed(secret: str, body: str, *, at: datetime | None = None, msg_id: str = "msg_1") -> dict[str, str]:
    """Standard Webhooks headers of `body`, signed with the reference library."""
    when = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body),
    }


def test_an_event_signed_by_rubins_dispatcher_is_verified_and_typed() -> None:
    secret, event_id, happened = new_signing_secret(), new_event_id(), datetime.now(UTC)
    body = envelope("message.completed", COMPLETED, happened)
    headers = signature_headers(event_id, datetime.now(UTC), body, [secret])

    event = verify_webhook(secret, body.encode(), headers)

    assert isinstance(event, WebhookEvent)
    assert (event.id, event.type, event.data) == (event_id, "message.completed", COMPLETED)
    assert event.timestamp.tzinfo is not None and abs(event.timestamp - happened) < timedelta(milliseconds=1)


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = new_signing_secret(), new_signing_secret()
    body = envelope("conversation.deleted", {"user_id": 4, "conversation_id": "c0ffee"}, datetime.now(UTC))
    headers = signature_headers("msg_rotated", datetime.now(UTC), body, [new, old])
    assert " " in headers["webhook-signature"]
    assert verify_webhook(old, body, headers).type == verify_webhook(new, body, headers).type == "conversation.deleted"
    with pytest.raises(InvalidWebhookError):
        verify_webhook(new_signing_secret(), body, headers)


def test_a_request_signed_with_the_library_is_verified_whatever_the_header_case() -> None:
    secret = new_signing_secret()
    body = json.dumps({"type": "webhook.test", "timestamp": "2026-11-29T13:02:53.342Z", "data": {"user_id": 4}})
    headers = {name.title(): value for name, value in signed(secret, body).items()}  # Webhook-Id...
    event = verify_webhook(secret, body, headers)
    assert (event.id, event.type, event.data) == ("msg_1", "webhook.test", {"user_id": 4})
    assert event.timestamp == datetime(2026, 11, 29, 13, 2, 53, 342000, tzinfo=UTC)


def test_a_tampered_body_is_refused() -> None:
    secret = new_signing_secret()
    body = envelope("message.completed", COMPLETED, datetime.now(UTC))
    headers = signed(secret, body)
    tampered = body.replace('"completion_tokens":128', '"completion_tokens":129')
    assert tampered != body
    with pytest.raises(InvalidWebhookError, match="No matching signature") as info:
        verify_webhook(secret, tampered.encode(), headers)
    assert isinstance(info.value, WebhookVerificationError)  # catchable as the library's error too
    with pytest.raises(InvalidWebhookError):
        verify_webhook(secret, body, {**headers, "webhook-id": "msg_2"})  # the id is signed too


@pytest.mark.parametrize(
    ("shift", "reason"), [(timedelta(minutes=-10), "too old"), (timedelta(minutes=10), "too new")]
)  # fmt: skip
def test_a_stale_or_future_timestamp_is_refused_though_its_signature_matches(shift: timedelta, reason: str) -> None:
    secret = new_signing_secret()
    body = envelope("webhook.test", {"user_id": 4}, datetime.now(UTC))
    headers = signed(secret, body, at=datetime.now(UTC) + shift)
    with pytest.raises(InvalidWebhookError, match=reason):
        verify_webhook(secret, body, headers)


def test_missing_or_malformed_headers_secrets_and_bodies_are_refused() -> None:
    secret = new_signing_secret()
    body = envelope("webhook.test", {"user_id": 4}, datetime.now(UTC))
    headers = signed(secret, body)
    for name in headers:
        with pytest.raises(InvalidWebhookError, match="Missing required headers"):
            verify_webhook(secret, body, {k: v for k, v in headers.items() if k != name})
    for signature in ("garbage", "v1,not base64!", "v2," + headers["webhook-signature"][3:]):
        with pytest.raises(InvalidWebhookError):
            verify_webhook(secret, body, {**headers, "webhook-signature": signature})
    with pytest.raises(InvalidWebhookError):
        verify_webhook(secret, body, {**headers, "webhook-timestamp": "yesterday"})
    for bad_secret in ("", "whsec_", "whsec_@@@"):
        with pytest.raises(InvalidWebhookError, match="secret"):
            verify_webhook(bad_secret, body, headers)
    with pytest.raises(InvalidWebhookError, match="malformed"):
        verify_webhook(secret, b"\xff\xfe", signed(secret, "x"))
    for not_an_event in ("[1, 2]", '{"type": "webhook.test", "data": {}}', '{"type": 1, "timestamp": "x", "data": {}}'):
        with pytest.raises(InvalidWebhookError, match="not"):
            verify_webhook(secret, not_an_event, signed(secret, not_an_event))
