"""The dispatcher against a real HTTP receiver: signatures, retries on the schedule, 410, rotation, waking.

Every test runs on SQLite and on PostgreSQL (`db_url`). Requests go over real sockets to
tests/webhooks/receiver.py, which checks each one with the standardwebhooks reference implementation.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import text
from sqlmodel import select

from rubin_app.core.clock import utcnow
from rubin_app.webhooks import payloads, service
from rubin_app.webhooks.delivery import USER_AGENT
from rubin_app.webhooks.events import emit
from rubin_app.webhooks.models import DeliveryStatus, WebhookEndpoint
from rubin_app.webhooks.outbox import next_due_at
from tests.webhooks.conftest import SECRET_KEY
from tests.webhooks.helpers import Scope, deliveries, emit_completed, until
from tests.webhooks.receiver import Reply

ROOT = Path(__file__).resolve().parents[2]


async def test_a_delivery_is_signed_as_standard_webhooks_says(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers
):
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url("/hook?token=abc"))
    await emit_completed(scope, alice.user_id)
    dispatcher = dispatchers()
    assert await dispatcher.run_once() == 1
    [got] = receiver.received
    [row] = await deliveries(scope)
    assert got.verifies_with(hook.secret)
    assert row.payload.startswith("$rv1$") and b"$rv1$" not in got.body  # sealed at rest, sent in clear
    async with scope() as s:
        endpoint = await s.get(WebhookEndpoint, row.endpoint_id)
        assert endpoint is not None
        sent = payloads.read(await payloads.ciphers(s, [endpoint]), endpoint, row.payload)
    assert got.path == "/hook?token=abc" and got.body == sent.encode()
    assert got.headers["webhook-id"] == row.event_id and row.event_id.startswith("msg_")
    assert got.headers["content-type"] == "application/json" and got.headers["user-agent"] == USER_AGENT
    assert json.loads(got.body)["data"]["content"] == "Forty-two."
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (DeliveryStatus.succeeded, 1, 200, "")
    assert row.delivered_at is not None and row.last_response_ms is not None and row.lease_until is None
    assert await dispatcher.run_once() == 0  # sent once


async def test_failures_are_retried_on_the_schedule(scope: Scope, new_actor, new_endpoint, receiver, dispatchers):
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    receiver.replies = [Reply(500), Reply(503), Reply(200)]
    dispatcher = dispatchers(webhook_retry_schedule="0,0.4,0.8", webhook_poll_seconds=5)
    dispatcher.start()  # waits for the due time itself, not for the 5 s poll
    await emit_completed(scope, alice.user_id)
    first, second, third = await receiver.wait_for(3)
    for gap, planned in ((second.at - first.at, 0.4), (third.at - second.at, 0.8)):
        assert planned * 0.8 - 0.05 <= gap <= planned * 1.2 + 0.5, (gap, planned)
    assert all(r.verifies_with(hook.secret) for r in (first, second, third))
    assert len({r.headers["webhook-id"] for r in (first, second, third)}) == 1  # one message, retried

    async def succeeded() -> bool:
        return (await deliveries(scope))[0].status == DeliveryStatus.succeeded

    await until(succeeded)
    [row] = await deliveries(scope)
    assert (row.attempts, row.last_status_code, row.last_error) == (3, 200, "")


async def test_a_delivery_gives_up_when_the_schedule_runs_out(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers
):
    alice = await new_actor()
    await new_endpoint(alice, receiver.url())
    receiver.replies = [Reply(500, body=b"boom\n  again") for _ in range(3)]
    dispatcher = dispatchers(webhook_retry_schedule="0,0.2,0.2")
    await emit_completed(scope, alice.user_id)
    assert await dispatcher.run_once() == 1
    [row] = await deliveries(scope)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
        "pending",
        1,
        500,
        "HTTP 500: boom again",
    )
    delay = (row.next_attempt_at - utcnow()).total_seconds()
    assert 0 < delay <= 0.2 * 1.2
    assert await dispatcher.run_once() == 0  # not due yet
    dispatcher.start()

    async def failed() -> bool:
        return (await deliveries(scope))[0].status == DeliveryStatus.failed

    await until(failed)
    [row] = await deliveries(scope)
    assert row.attempts == 3 and len(receiver.received) == 3 and row.delivered_at is None


async def test_410_gone_disables_the_endpoint(scope: Scope, new_actor, new_endpoint, receiver, dispatchers) -> None:
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    receiver.replies = [Reply(410)]
    await emit_completed(scope, alice.user_id, times=2)
    dispatcher = dispatchers(batch_size=1)
    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0  # the other one was stopped
    assert [d.status for d in await deliveries(scope)] == [DeliveryStatus.disabled, DeliveryStatus.disabled]
    async with scope() as s:
        endpoint = await service.get_endpoint(s, actor=alice, endpoint_id=hook.id)
    assert not endpoint.enabled and "410 Gone" in endpoint.disabled_reason
    await emit_completed(scope, alice.user_id)
    assert len(await deliveries(scope)) == 2 and len(receiver.received) == 1


async def test_rotation_signs_with_both_secrets_during_the_overlap(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers, wh_settings
) -> None:
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    async with scope() as s:
        rotated = await service.rotate_secret(
            s, actor=alice, settings=wh_settings(), secret_key=SECRET_KEY, endpoint_id=hook.id
        )
    await emit_completed(scope, alice.user_id)
    dispatcher = dispatchers()
    await dispatcher.run_once()
    [during] = receiver.received
    assert during.verifies_with(hook.secret) and during.verifies_with(rotated.secret)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    async with scope() as s:  # the overlap is over
        await s.exec(  # type: ignore[call-overload]
            text("UPDATE webhook_endpoints SET previous_secret_expires_at = :t"), params={"t": utcnow()}
        )
    await emit_completed(scope, alice.user_id)
    await dispatcher.run_once()
    after = receiver.received[1]
    assert after.verifies_with(rotated.secret) and not after.verifies_with(hook.secret)
    assert len(after.headers["webhook-signature"].split(" ")) == 1


async def test_emit_wakes_a_running_dispatcher_and_a_rollback_sends_nothing(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers
) -> None:
    alice = await new_actor()
    await new_endpoint(alice, receiver.url())
    dispatcher = dispatchers(webhook_poll_seconds=60)
    dispatcher.start()
    await asyncio.sleep(0.3)  # idle: waiting for a minute
    try:
        async with scope() as s:
            await emit(s, event_type="conversation.deleted", user_id=alice.user_id, data={"conversation_id": "c"})
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    loop = asyncio.get_running_loop()
    started = loop.time()
    await emit_completed(scope, alice.user_id)
    [got] = await receiver.wait_for(1, timeout=5)
    assert got.at - started < 3 and json.loads(got.body)["type"] == "message.completed"
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1 and len(await deliveries(scope)) == 1


async def test_send_test_and_disabled_endpoints(
    scope: Scope, db_url: str, new_actor, new_endpoint, receiver, dispatchers
):
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    async with scope() as s:
        await service.send_test(s, actor=alice, endpoint_id=hook.id)
    dispatcher = dispatchers()
    assert await dispatcher.run_once() == 1
    [got] = receiver.received
    assert got.verifies_with(hook.secret) and json.loads(got.body)["type"] == "webhook.test"
    await emit_completed(scope, alice.user_id)
    async with scope() as s:  # an endpoint disabled after its event was queued: the row is never sent
        await s.exec(text("UPDATE webhook_endpoints SET enabled = false"))  # type: ignore[call-overload]
    assert await dispatcher.run_once() == 0
    assert await next_due_at(db_url) is None  # an idle dispatcher does not spin on it either
    async with scope() as s:
        assert (await s.exec(select(WebhookEndpoint.enabled))).all() == [False]


async def test_a_redelivery_is_sent_again_with_the_same_id(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers
):
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    await emit_completed(scope, alice.user_id)
    dispatcher = dispatchers()
    await dispatcher.run_once()
    [row] = await deliveries(scope)
    assert row.id is not None
    async with scope() as s:
        await service.redeliver(s, actor=alice, endpoint_id=hook.id, delivery_id=row.id)
    assert await dispatcher.run_once() == 1
    first, again = await receiver.wait_for(2)
    assert first.headers["webhook-id"] == again.headers["webhook-id"] and first.body == again.body
    assert again.verifies_with(hook.secret)
    [row] = await deliveries(scope)
    assert (row.status, row.attempts) == (DeliveryStatus.succeeded, 1)


async def test_stop_is_prompt_and_idempotent(dispatchers) -> None:
    dispatcher = dispatchers()
    dispatcher.start()
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await dispatcher.stop()
    assert loop.time() - started < 1
