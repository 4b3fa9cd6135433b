"""Endpoint management (rubin_app/webhooks/service.py): ownership, validation, secrets, the delivery log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from rubin_app.webhooks import service
from rubin_app.webhooks.errors import (
    DeliveryNotFound,
    EndpointDisabled,
    EndpointNotFound,
    InvalidEndpoint,
    TooManyEndpoints,
    WebhookForbidden,
)
from rubin_app.webhooks.models import DeliveryStatus, WebhookDelivery
from rubin_app.webhooks.schemas import EndpointCreate, EndpointUpdate
from rubin_app.webhooks.service import Actor
from tests.webhooks.conftest import SECRET_KEY, SettingsFactory
from tests.webhooks.helpers import emit_completed

URL = "https://93.184.215.14/hooks/rubin"  # a public address: accepted without any DNS

Scope = Callable[[], Any]


async def test_create_returns_the_secret_once_and_stores_it_encrypted(scope: Scope, new_actor, new_endpoint) -> None:
    alice = await new_actor()
    created = await new_endpoint(alice, URL, description="  my\x00 n8n  ", events=["message.completed"])
    assert created.secret.startswith("whsec_")
    assert (created.url, created.description, created.events, created.enabled) == (
        URL, "my  n8n", ["message.completed"], True,
    )  # fmt: skip
    async with scope() as s:
        shown = await service.get_endpoint(s, actor=alice, endpoint_id=created.id)
        raw = (await s.exec(text("SELECT secret FROM webhook_endpoints"))).one()[0]  # type: ignore[call-overload]
    assert "secret" not in shown.model_dump()
    assert raw.startswith("v1.") and created.secret not in raw


async def test_a_user_never_reaches_another_users_endpoint(scope: Scope, new_actor, new_endpoint, wh_settings) -> None:
    alice, bob = await new_actor(), await new_actor()
    mine = await new_endpoint(alice, URL)
    await emit_completed(scope, alice.user_id)
    async with scope() as s:
        [delivery] = (await s.exec(select(WebhookDelivery))).all()
    assert delivery.id is not None
    settings = wh_settings()
    calls = {
        "get": lambda s: service.get_endpoint(s, actor=bob, endpoint_id=mine.id),
        "update": lambda s: service.update_endpoint(
            s, actor=bob, settings=settings, endpoint_id=mine.id, data=EndpointUpdate(enabled=False)
        ),
        "delete": lambda s: service.delete_endpoint(s, actor=bob, endpoint_id=mine.id),
        "rotate": lambda s: service.rotate_secret(
            s, actor=bob, settings=settings, secret_key=SECRET_KEY, endpoint_id=mine.id
        ),
        "deliveries": lambda s: service.list_deliveries(s, actor=bob, endpoint_id=mine.id),
        "delivery": lambda s: service.get_delivery(s, actor=bob, endpoint_id=mine.id, delivery_id=delivery.id),
        "redeliver": lambda s: service.redeliver(s, actor=bob, endpoint_id=mine.id, delivery_id=delivery.id),
        "test": lambda s: service.send_test(s, actor=bob, endpoint_id=mine.id),
    }
    for call in calls.values():
        with pytest.raises(EndpointNotFound):
            async with scope() as s:
                await call(s)
    async with scope() as s:
        assert await service.list_endpoints(s, actor=bob) == []
        assert [e.id for e in await service.list_endpoints(s, actor=alice)] == [mine.id]
        still = await service.get_endpoint(s, actor=alice, endpoint_id=mine.id)
        assert still.enabled
        with pytest.raises(EndpointNotFound):
            await service.get_endpoint(s, actor=alice, endpoint_id=mine.id + 1000)  # same answer as "not yours"
        with pytest.raises(DeliveryNotFound):
            await service.get_delivery(s, actor=alice, endpoint_id=mine.id, delivery_id=delivery.id + 1000)


async def test_instance_endpoints_are_for_admins(scope: Scope, new_actor, new_endpoint) -> None:
    admin, other_admin, user = await new_actor(admin=True), await new_actor(admin=True), await new_actor()
    with pytest.raises(WebhookForbidden):
        await new_endpoint(user, URL, scope="instance")
    hook = await new_endpoint(admin, URL, scope="instance", events=["user.created", "message.completed"])
    async with scope() as s:
        with pytest.raises(WebhookForbidden):
            await service.list_endpoints(s, actor=user, scope="instance")
        with pytest.raises(EndpointNotFound):
            await service.get_endpoint(s, actor=user, endpoint_id=hook.id)
        listed = await service.list_endpoints(s, actor=other_admin, scope="instance")  # any admin manages them
        assert [e.id for e in listed] == [hook.id]
        assert await service.list_endpoints(s, actor=other_admin) == []  # but not another admin's own
    with pytest.raises(InvalidEndpoint, match=r"user\.created"):
        await new_endpoint(user, URL, events=["user.created"])  # an instance event


@pytest.mark.parametrize(
    "url",
    ["http://localhost:5678/webhook", "http://127.0.0.1/", "http://169.254.169.254/latest/meta-data",
     "http://10.0.0.8/", "http://[::1]/", "ftp://example.com/", "http://u:p@93.184.215.14/"],
)  # fmt: skip
async def test_private_targets_are_refused_at_creation(url: str, scope: Scope, new_actor, wh_settings) -> None:
    alice = await new_actor()
    settings = wh_settings(webhook_allow_private=False)
    async with scope() as s:
        with pytest.raises(InvalidEndpoint, match="URL refused"):
            await service.create_endpoint(
                s, actor=alice, settings=settings, secret_key=SECRET_KEY, data=EndpointCreate(url=url)
            )


async def test_private_targets_when_an_admin_allows_them(scope: Scope, new_actor, wh_settings) -> None:
    alice = await new_actor()
    for settings in (wh_settings(webhook_allow_private=True), wh_settings(webhook_allowed_networks="127.0.0.1/32")):
        async with scope() as s:
            await service.create_endpoint(
                s, actor=alice, settings=settings, secret_key=SECRET_KEY, data=EndpointCreate(url="http://127.0.0.1/")
            )


async def test_update_validates_and_disabling_stops_queued_deliveries(
    scope: Scope, new_actor, new_endpoint, wh_settings: SettingsFactory
) -> None:
    alice = await new_actor()
    hook = await new_endpoint(alice, URL)
    strict = wh_settings(webhook_allow_private=False)
    async with scope() as s:
        with pytest.raises(InvalidEndpoint):
            await service.update_endpoint(
                s, actor=alice, settings=strict, endpoint_id=hook.id, data=EndpointUpdate(url="http://10.0.0.1/")
            )
        with pytest.raises(InvalidEndpoint, match="at least one event"):
            await service.update_endpoint(
                s, actor=alice, settings=strict, endpoint_id=hook.id, data=EndpointUpdate(events=[])
            )
    assert await emit_completed(scope, alice.user_id) == 1
    async with scope() as s:
        off = await service.update_endpoint(
            s, actor=alice, settings=strict, endpoint_id=hook.id, data=EndpointUpdate(enabled=False)
        )
    assert (off.enabled, off.disabled_reason) == (False, "Disabled by a user.")
    assert await emit_completed(scope, alice.user_id) == 0  # disabled endpoints receive nothing
    async with scope() as s:
        statuses = (await s.exec(select(WebhookDelivery.status))).all()
        assert statuses == [DeliveryStatus.disabled]
        with pytest.raises(EndpointDisabled):
            await service.send_test(s, actor=alice, endpoint_id=hook.id)
        on = await service.update_endpoint(
            s,
            actor=alice,
            settings=strict,
            endpoint_id=hook.id,
            data=EndpointUpdate(enabled=True, events=["conversation.created", "message.completed"], description="x"),
        )
    assert (on.enabled, on.disabled_reason, on.events) == (True, "", ["conversation.created", "message.completed"])


async def test_rotation_keeps_the_old_secret_for_the_overlap(scope: Scope, new_actor, new_endpoint, wh_settings):
    alice = await new_actor()
    hook = await new_endpoint(alice, URL)
    async with scope() as s:
        rotated = await service.rotate_secret(
            s, actor=alice, settings=wh_settings(), secret_key=SECRET_KEY, endpoint_id=hook.id
        )
    assert rotated.secret != hook.secret and rotated.previous_secret_expires_at is not None
    hours = (rotated.previous_secret_expires_at - rotated.updated_at).total_seconds() / 3600
    assert hours == pytest.approx(24)
    async with scope() as s:
        again = await service.rotate_secret(
            s, actor=alice, settings=wh_settings(webhook_secret_overlap_hours=0), secret_key=SECRET_KEY,
            endpoint_id=hook.id,
        )  # fmt: skip
    assert again.previous_secret_expires_at is None  # no overlap asked: the old secret is gone at once


async def test_deliveries_are_paged_newest_first_and_redelivered(scope: Scope, new_actor, new_endpoint) -> None:
    alice = await new_actor()
    hook = await new_endpoint(alice, URL)
    for _ in range(5):
        await emit_completed(scope, alice.user_id)
    async with scope() as s:
        first = await service.list_deliveries(s, actor=alice, endpoint_id=hook.id, limit=2)
        second = await service.list_deliveries(
            s, actor=alice, endpoint_id=hook.id, limit=2, before_id=first.next_before_id
        )
        third = await service.list_deliveries(
            s, actor=alice, endpoint_id=hook.id, limit=2, before_id=second.next_before_id
        )
    ids = [d.id for page in (first, second, third) for d in page.items]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5 and third.next_before_id is None
    async with scope() as s:  # a finished delivery is queued again, with the same webhook-id
        await s.exec(  # type: ignore[call-overload]
            text("UPDATE webhook_deliveries SET status = 'failed', attempts = 3 WHERE id = :i"), params={"i": ids[0]}
        )
    async with scope() as s:
        again = await service.redeliver(s, actor=alice, endpoint_id=hook.id, delivery_id=ids[0])
        detail = await service.get_delivery(s, actor=alice, endpoint_id=hook.id, delivery_id=ids[0])
    assert (again.status, again.attempts) == (DeliveryStatus.pending, 0)
    assert detail.event_id == again.event_id and '"content":"Forty-two."' in detail.payload


async def test_send_test_queues_one_test_event_for_that_endpoint_only(scope: Scope, new_actor, new_endpoint) -> None:
    alice = await new_actor()
    hook, other = await new_endpoint(alice, URL), await new_endpoint(alice, URL)
    async with scope() as s:
        queued = await service.send_test(s, actor=alice, endpoint_id=hook.id)
    async with scope() as s:
        rows = (await s.exec(select(WebhookDelivery).order_by(col(WebhookDelivery.id)))).all()
    assert [(r.endpoint_id, r.event_type) for r in rows] == [(hook.id, "webhook.test")]
    assert queued.event_id.startswith("msg_") and other.id != hook.id


async def test_delete_removes_the_endpoint_and_its_log(scope: Scope, new_actor, new_endpoint) -> None:
    alice = await new_actor()
    hook = await new_endpoint(alice, URL)
    await emit_completed(scope, alice.user_id)
    async with scope() as s:
        await service.delete_endpoint(s, actor=alice, endpoint_id=hook.id)
    async with scope() as s:
        assert (await s.exec(select(WebhookDelivery))).all() == []
        with pytest.raises(EndpointNotFound):
            await service.get_endpoint(s, actor=alice, endpoint_id=hook.id)


async def test_endpoints_per_user_are_limited(new_actor, new_endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "MAX_ENDPOINTS", 2)
    alice, bob = await new_actor(), await new_actor()
    await new_endpoint(alice, URL)
    await new_endpoint(alice, URL)
    with pytest.raises(TooManyEndpoints):
        await new_endpoint(alice, URL)
    await new_endpoint(bob, URL)  # per user


def test_actor_of_a_user() -> None:
    from rubin_app.models import Role, User

    assert Actor.of(User(id=3, external_id="x", role=Role.admin)) == Actor(3, True)
    assert Actor.of(User(id=4, external_id="y", role=Role.pending)) == Actor(4, False)
