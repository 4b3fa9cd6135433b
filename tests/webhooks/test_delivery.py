"""The dispatcher against a real HTTP receiver: signatures, retries, 410, leases, crashes, concurrency.

Every test runs on SQLite and on PostgreSQL (`db_url`). Requests go over real sockets to
tests/webhooks/receiver.py, which checks each one with the standardwebhooks reference implementation.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import col, select

from rubin_app.core.clock import utcnow
from rubin_app.webhooks import service
from rubin_app.webhooks.delivery import USER_AGENT
from rubin_app.webhooks.events import emit
from rubin_app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tests.webhooks.conftest import SECRET_KEY
from tests.webhooks.receiver import Receiver, Reply

ROOT = Path(__file__).resolve().parents[2]
Scope = Callable[[], Any]


async def _emit(scope: Scope, user_id: int, content: str = "Forty-two.", times: int = 1) -> None:
    async with scope() as s:
        for _ in range(times):
            await emit(
                s,
                event_type="message.completed",
                user_id=user_id,
                data={
                    "conversation_id": "c1", "message_id": 7, "model": "m", "source": "ui", "prompt_tokens": 3,
                    "completion_tokens": 5, "duration_ms": 120, "content": content,
                },
            )  # fmt: skip


async def _deliveries(scope: Scope) -> list[WebhookDelivery]:
    async with scope() as s:
        return list((await s.exec(select(WebhookDelivery).order_by(col(WebhookDelivery.id)))).all())


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_delivery_is_signed_as_standard_webhooks_says(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers
):
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url("/hook?token=abc"))
    await _emit(scope, alice.user_id)
    dispatcher = dispatchers()
    assert await dispatcher.run_once() == 1
    [got] = receiver.received
    [row] = await _deliveries(scope)
    assert got.verifies_with(hook.secret)
    assert got.path == "/hook?token=abc" and got.body == row.payload.encode()
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
    await _emit(scope, alice.user_id)
    first, second, third = await receiver.wait_for(3)
    for gap, planned in ((second.at - first.at, 0.4), (third.at - second.at, 0.8)):
        assert planned * 0.8 - 0.05 <= gap <= planned * 1.2 + 0.5, (gap, planned)
    assert all(r.verifies_with(hook.secret) for r in (first, second, third))
    assert len({r.headers["webhook-id"] for r in (first, second, third)}) == 1  # one message, retried

    async def succeeded() -> bool:
        return (await _deliveries(scope))[0].status == DeliveryStatus.succeeded

    await _until(succeeded)
    [row] = await _deliveries(scope)
    assert (row.attempts, row.last_status_code, row.last_error) == (3, 200, "")


async def test_a_delivery_gives_up_when_the_schedule_runs_out(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers
):
    alice = await new_actor()
    await new_endpoint(alice, receiver.url())
    receiver.replies = [Reply(500, body=b"boom\n  again") for _ in range(3)]
    dispatcher = dispatchers(webhook_retry_schedule="0,0.2,0.2")
    await _emit(scope, alice.user_id)
    assert await dispatcher.run_once() == 1
    [row] = await _deliveries(scope)
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
        return (await _deliveries(scope))[0].status == DeliveryStatus.failed

    await _until(failed)
    [row] = await _deliveries(scope)
    assert row.attempts == 3 and len(receiver.received) == 3 and row.delivered_at is None


async def test_410_gone_disables_the_endpoint(scope: Scope, new_actor, new_endpoint, receiver, dispatchers) -> None:
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    receiver.replies = [Reply(410)]
    await _emit(scope, alice.user_id, times=2)
    dispatcher = dispatchers(batch_size=1)
    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0  # the other one was stopped
    assert [d.status for d in await _deliveries(scope)] == [DeliveryStatus.disabled, DeliveryStatus.disabled]
    async with scope() as s:
        endpoint = await service.get_endpoint(s, actor=alice, endpoint_id=hook.id)
    assert not endpoint.enabled and "410 Gone" in endpoint.disabled_reason
    await _emit(scope, alice.user_id)
    assert len(await _deliveries(scope)) == 2 and len(receiver.received) == 1


async def test_a_dispatcher_killed_mid_delivery_is_taken_over_after_its_lease(
    scope: Scope, db_url: str, new_actor, new_endpoint, receiver, dispatchers
) -> None:
    """A real crash: the first dispatcher is a process of its own, SIGKILLed while the receiver holds its request."""
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    receiver.replies = [Reply(hold=True), Reply(200)]
    await _emit(scope, alice.user_id)
    lease = 3.0
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.webhooks.worker_process", db_url, SECRET_KEY, str(lease),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        [first] = await receiver.wait_for(1, timeout=60)
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    assert worker.returncode == -signal.SIGKILL and await worker.stdout.read() == b""  # type: ignore[union-attr]
    [row] = await _deliveries(scope)
    assert (row.status, row.attempts) == (DeliveryStatus.delivering, 1) and row.lease_until is not None

    successor = dispatchers()
    assert await successor.run_once() == 0  # the lease still holds: not sent twice
    await asyncio.sleep(max(0.0, (row.lease_until - utcnow()).total_seconds()) + 0.1)
    assert await successor.run_once() == 1
    first_again, second = await receiver.wait_for(2)
    assert first_again is first and second.at - first.at >= lease - 0.5
    assert second.headers["webhook-id"] == first.headers["webhook-id"]  # the same message: receivers can dedupe
    assert second.verifies_with(hook.secret)
    [row] = await _deliveries(scope)
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.succeeded, 2, 200)


async def test_concurrent_dispatchers_deliver_each_event_exactly_once(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers
) -> None:
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    await _emit(scope, alice.user_id, times=40)
    workers = [dispatchers(batch_size=4) for _ in range(3)]

    async def drain(dispatcher: Any) -> int:
        total = 0
        while sent := await dispatcher.run_once():
            total += sent
        return total

    sent = await asyncio.gather(*(drain(w) for w in workers))
    assert sum(sent) == 40 and sum(1 for n in sent if n) >= 2, sent  # the work was shared, and raced for
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(ids) == 40 and set(ids.values()) == {1}
    assert all(r.verifies_with(hook.secret) for r in receiver.received)
    rows = await _deliveries(scope)
    assert {(r.status, r.attempts) for r in rows} == {(DeliveryStatus.succeeded, 1)}


async def test_rotation_signs_with_both_secrets_during_the_overlap(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers, wh_settings
) -> None:
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    async with scope() as s:
        rotated = await service.rotate_secret(
            s, actor=alice, settings=wh_settings(), secret_key=SECRET_KEY, endpoint_id=hook.id
        )
    await _emit(scope, alice.user_id)
    dispatcher = dispatchers()
    await dispatcher.run_once()
    [during] = receiver.received
    assert during.verifies_with(hook.secret) and during.verifies_with(rotated.secret)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    async with scope() as s:  # the overlap is over
        await s.exec(  # type: ignore[call-overload]
            text("UPDATE webhook_endpoints SET previous_secret_expires_at = :t"), params={"t": utcnow()}
        )
    await _emit(scope, alice.user_id)
    await dispatcher.run_once()
    after = receiver.received[1]
    assert after.verifies_with(rotated.secret) and not after.verifies_with(hook.secret)
    assert len(after.headers["webhook-signature"].split(" ")) == 1


async def test_private_targets_are_refused_at_delivery(scope: Scope, new_actor, new_endpoint, receiver, dispatchers):
    """Created while private targets were allowed (or the name resolved elsewhere then): refused when sending."""
    alice = await new_actor()
    await new_endpoint(alice, receiver.url())
    await _emit(scope, alice.user_id)
    assert await dispatchers(webhook_allow_private=False).run_once() == 1
    [row] = await _deliveries(scope)
    assert row.status == DeliveryStatus.pending and row.last_status_code is None
    assert row.last_error.startswith("refused: 127.0.0.1 is a loopback address")
    await asyncio.sleep(0.1)
    assert receiver.received == []


async def test_a_redirect_to_a_private_address_fails_the_delivery(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers
) -> None:
    internal = await Receiver("127.0.0.2").start()
    try:
        alice = await new_actor()
        await new_endpoint(alice, receiver.url())
        receiver.replies = [Reply(307, headers={"location": internal.url("/admin")})]
        await _emit(scope, alice.user_id)
        strict = dispatchers(webhook_allow_private=False, webhook_allowed_networks="127.0.0.1/32")
        assert await strict.run_once() == 1
        [row] = await _deliveries(scope)
        assert row.last_error.startswith("refused: redirect refused: 127.0.0.2 is a loopback address")
        assert row.status == DeliveryStatus.pending and len(receiver.received) == 1
        await asyncio.sleep(0.1)
        assert internal.received == []
    finally:
        await internal.close()


async def test_logs_hold_no_secret_token_or_payload(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers, wh_settings, caplog
) -> None:
    caplog.set_level("INFO")  # the database drivers log SQL parameters at DEBUG: not ours to change
    for ours in ("rubin_app", "httpx", "httpcore"):
        caplog.set_level("DEBUG", logger=ours)
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url("/hook/tok-PATH-123?key=tok-QUERY-456"))
    async with scope() as s:
        rotated = await service.rotate_secret(
            s, actor=alice, settings=wh_settings(), secret_key=SECRET_KEY, endpoint_id=hook.id
        )
    receiver.replies = [Reply(500, body=b"echo PAYLOAD-MARKER-789"), Reply(200)]
    await _emit(scope, alice.user_id, content="PAYLOAD-MARKER-789")
    dispatcher = dispatchers(webhook_retry_schedule="0,0.01")
    dispatcher.start()
    await receiver.wait_for(2)
    await _until(lambda: _all_done(scope))
    await dispatcher.stop()
    await _emit(scope, alice.user_id, content="PAYLOAD-MARKER-789")  # then one refused at delivery
    await dispatchers(webhook_allow_private=False).run_once()
    logged = caplog.text
    assert "webhook msg_" in logged and "attempt 1 got HTTP 500" in logged and "HTTP 200" in logged
    assert "refused: 127.0.0.1 is a loopback address" in logged
    for secret in (hook.secret, rotated.secret):
        assert secret not in logged and secret.removeprefix("whsec_")[:16] not in logged
    for private in ("tok-PATH-123", "tok-QUERY-456", "PAYLOAD-MARKER-789", "Forty-two"):
        assert private not in logged


async def _all_done(scope: Scope) -> bool:
    return all(d.status == DeliveryStatus.succeeded for d in await _deliveries(scope))


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
    await _emit(scope, alice.user_id)
    [got] = await receiver.wait_for(1, timeout=5)
    assert got.at - started < 3 and json.loads(got.body)["type"] == "message.completed"
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1 and len(await _deliveries(scope)) == 1


async def test_send_test_and_disabled_endpoints(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers, wh_settings
):
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    async with scope() as s:
        await service.send_test(s, actor=alice, endpoint_id=hook.id)
    dispatcher = dispatchers()
    assert await dispatcher.run_once() == 1
    [got] = receiver.received
    assert got.verifies_with(hook.secret) and json.loads(got.body)["type"] == "webhook.test"
    await _emit(scope, alice.user_id)
    async with scope() as s:  # an endpoint disabled after its event was queued: the row is never sent
        await s.exec(text("UPDATE webhook_endpoints SET enabled = false"))  # type: ignore[call-overload]
    assert await dispatcher.run_once() == 0
    async with scope() as s:
        assert (await s.exec(select(WebhookEndpoint.enabled))).all() == [False]


async def test_stop_is_prompt_and_idempotent(dispatchers) -> None:
    dispatcher = dispatchers()
    dispatcher.start()
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await dispatcher.stop()
    assert loop.time() - started < 1
