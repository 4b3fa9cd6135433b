"""emit(): who gets an event, what each endpoint's payload holds, and the transactional outbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select

from rubin_app.webhooks import events, payloads
from rubin_app.webhooks.events import CATALOG, emit, subscribable
from rubin_app.webhooks.models import EndpointScope, WebhookDelivery, WebhookEndpoint

URL = "https://93.184.215.14/hook"
DOCS = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text(encoding="utf-8")
Scope = Callable[[], Any]

COMPLETED = {
    "conversation_id": "c1", "message_id": 7, "model": "m", "source": "api", "prompt_tokens": 3,
    "completion_tokens": 5, "duration_ms": 120, "content": "The private answer",
}  # fmt: skip


async def _payloads(scope: Scope) -> dict[int, dict[str, Any]]:
    """Each endpoint's payload as it will be sent (a user endpoint's is sealed at rest with its owner's key)."""
    async with scope() as s:
        rows = (await s.exec(select(WebhookDelivery).order_by(col(WebhookDelivery.id)))).all()
        endpoints = {r.endpoint_id: await s.get(WebhookEndpoint, r.endpoint_id) for r in rows}
        keys = await payloads.ciphers(s, [e for e in endpoints.values() if e is not None])
    for r in rows:
        endpoint = endpoints[r.endpoint_id]
        assert endpoint is not None
        assert r.payload.startswith("$rv1$") == (endpoint.scope == EndpointScope.user), "sealed iff a user's"
    return {r.endpoint_id: json.loads(payloads.read(keys, endpoints[r.endpoint_id], r.payload)) for r in rows}


async def test_user_events_go_to_the_owner_and_subscribed_instance_endpoints(scope: Scope, new_actor, new_endpoint):
    alice, bob, admin = await new_actor(), await new_actor(), await new_actor(admin=True)
    alice_all = await new_endpoint(alice, URL)
    alice_other = await new_endpoint(alice, URL, events=["conversation.deleted"])
    await new_endpoint(bob, URL)  # never sees alice's events
    admin_own = await new_endpoint(admin, URL)  # an admin's own endpoint is a user endpoint: alice's are not its
    instance_all = await new_endpoint(admin, URL, scope="instance")
    await new_endpoint(admin, URL, scope="instance", events=["user.created"])
    async with scope() as s:
        assert await emit(s, event_type="message.completed", user_id=alice.user_id, data=COMPLETED) == 2
    payloads = await _payloads(scope)
    assert set(payloads) == {alice_all.id, instance_all.id}
    own, instance = payloads[alice_all.id], payloads[instance_all.id]
    assert own["type"] == instance["type"] == "message.completed"
    assert own["timestamp"] == instance["timestamp"] and own["timestamp"].endswith("Z")
    assert own["data"] == {"user_id": alice.user_id, **COMPLETED}
    assert "content" not in instance["data"] and "The private answer" not in json.dumps(instance)
    assert instance["data"]["user_id"] == alice.user_id and instance["data"]["completion_tokens"] == 5
    assert alice_other.id not in payloads and admin_own.id not in payloads


async def test_instance_events_go_to_instance_endpoints_only(scope: Scope, new_actor, new_endpoint) -> None:
    alice, admin = await new_actor(), await new_actor(admin=True)
    await new_endpoint(alice, URL)
    await new_endpoint(admin, URL)
    hook = await new_endpoint(admin, URL, scope="instance", events=["user.created"])
    data = {"email": "new@example.com", "display_name": "New", "provider": "local", "role": "pending"}
    async with scope() as s:
        assert await emit(s, event_type="user.created", user_id=alice.user_id, data=data) == 1
    assert (await _payloads(scope))[hook.id]["data"] == {"user_id": alice.user_id, **data}


async def test_the_outbox_is_part_of_the_callers_transaction(scope: Scope, new_actor, new_endpoint) -> None:
    alice = await new_actor()
    await new_endpoint(alice, URL)
    woken: list[int] = []
    events.add_wake_listener(lambda: woken.append(1))
    try:
        with pytest.raises(RuntimeError):
            async with scope() as s:
                assert await emit(s, event_type="message.completed", user_id=alice.user_id, data=COMPLETED) == 1
                raise RuntimeError("the request failed after the event")
        async with scope() as s:
            assert (await s.exec(select(func.count()).select_from(WebhookDelivery))).one() == 0
        assert woken == []  # nothing to send: nobody woken
        async with scope() as s:
            await emit(s, event_type="message.completed", user_id=alice.user_id, data=COMPLETED)
            assert woken == []  # not before the commit: the row would not be visible yet
        assert woken == [1]
    finally:
        events._wake_listeners.clear()


async def test_emit_refuses_what_the_catalog_does_not_describe(scope: Scope, new_actor) -> None:
    alice = await new_actor()
    async with scope() as s:
        with pytest.raises(ValueError, match="unknown webhook event type"):
            await emit(s, event_type="message.exploded", user_id=alice.user_id, data={})
        with pytest.raises(ValueError, match="missing data fields"):
            await emit(s, event_type="conversation.deleted", user_id=alice.user_id, data={})
        with pytest.raises(ValueError, match=r"unknown \['password'\]"):
            await emit(
                s,
                event_type="conversation.deleted",
                user_id=alice.user_id,
                data={"conversation_id": "c", "password": 1},
            )
        assert (
            await emit(s, event_type="conversation.deleted", user_id=alice.user_id, data={"conversation_id": "c"}) == 0
        )


def test_data_must_be_json() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="JSON cannot carry"):
        events.envelope("api_key.revoked", {"api_key_id": float("nan")}, now)
    with pytest.raises(ValueError, match="JSON cannot carry"):
        events.envelope("api_key.revoked", {"api_key_id": object()}, now)


def test_datetimes_become_iso_strings() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = json.loads(events.envelope("api_key.created", {"expires_at": when}, when))
    assert body == {
        "type": "api_key.created",
        "timestamp": "2026-01-02T03:04:05.000Z",
        "data": {"expires_at": when.isoformat()},
    }


def test_the_catalog() -> None:
    user_events = {n for n, e in CATALOG.items() if e.audience == "user"}
    assert {"message.completed", "message.failed", "conversation.created", "conversation.deleted"} <= user_events
    assert {"api_key.created", "api_key.revoked"} <= user_events
    assert {n for n, e in CATALOG.items() if e.audience == "instance"} == {"user.created", "user.approved"}
    assert set(subscribable("user")) == user_events
    assert set(subscribable("instance")) == set(CATALOG)
    for spec in CATALOG.values():
        assert set(spec.instance_fields) <= set(spec.user_fields) or spec.audience == "instance"
        assert "content" not in spec.instance_fields and "title" not in spec.instance_fields
        assert f"`{spec.name}`" in DOCS, f"docs/webhooks.md does not describe {spec.name}"
        for field in {*spec.user_fields, *spec.instance_fields}:
            assert f'"{field}"' in DOCS, f"docs/webhooks.md does not show {spec.name}'s field {field}"
