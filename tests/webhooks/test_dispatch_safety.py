"""What must never happen: a delivery lost or sent twice (a SIGKILLed dispatcher, dispatchers racing),
a request to a private address (at delivery, through a redirect), a secret, token or payload in the logs.

Every test runs on SQLite and on PostgreSQL (`db_url`), against the real HTTP receiver.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from rubin_app.core.clock import utcnow
from rubin_app.vault.service import get_vault
from rubin_app.webhooks import service
from rubin_app.webhooks.models import DeliveryStatus
from tests.webhooks.conftest import SECRET_KEY
from tests.webhooks.helpers import Scope, deliveries, emit_completed, until
from tests.webhooks.receiver import Receiver, Reply

ROOT = Path(__file__).resolve().parents[2]


async def test_a_dispatcher_killed_mid_delivery_is_taken_over_after_its_lease(
    scope: Scope, db_url: str, new_actor, new_endpoint, receiver, dispatchers
) -> None:
    """A real crash: the first dispatcher is a process of its own, SIGKILLed while the receiver holds its request."""
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    receiver.replies = [Reply(hold=True), Reply(200)]
    await emit_completed(scope, alice.user_id)
    lease = 3.0
    same_keys = ",".join(base64.b64encode(k).decode() for k in get_vault().keyring.keys)  # opens the payload
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.webhooks.worker_process", db_url, SECRET_KEY, str(lease),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "ENCRYPTION_KEY": same_keys},
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        [first] = await receiver.wait_for(1, timeout=60)
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    assert worker.returncode == -signal.SIGKILL and await worker.stdout.read() == b""  # type: ignore[union-attr]
    [row] = await deliveries(scope)
    assert (row.status, row.attempts) == (DeliveryStatus.delivering, 1) and row.lease_until is not None

    successor = dispatchers()
    assert await successor.run_once() == 0  # the lease still holds: not sent twice
    await asyncio.sleep(max(0.0, (row.lease_until - utcnow()).total_seconds()) + 0.1)
    assert await successor.run_once() == 1
    first_again, second = await receiver.wait_for(2)
    assert first_again is first and second.at - first.at >= lease - 0.5
    assert second.headers["webhook-id"] == first.headers["webhook-id"]  # the same message: receivers can dedupe
    assert second.verifies_with(hook.secret)
    [row] = await deliveries(scope)
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.succeeded, 2, 200)


async def test_concurrent_dispatchers_deliver_each_event_exactly_once(
    scope: Scope, new_actor, new_endpoint, receiver, dispatchers
) -> None:
    alice = await new_actor()
    hook = await new_endpoint(alice, receiver.url())
    await emit_completed(scope, alice.user_id, times=40)
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
    rows = await deliveries(scope)
    assert {(r.status, r.attempts) for r in rows} == {(DeliveryStatus.succeeded, 1)}


async def test_private_targets_are_refused_at_delivery(scope: Scope, new_actor, new_endpoint, receiver, dispatchers):
    """Created while private targets were allowed (or the name resolved elsewhere then): refused when sending."""
    alice = await new_actor()
    await new_endpoint(alice, receiver.url())
    await emit_completed(scope, alice.user_id)
    assert await dispatchers(webhook_allow_private=False).run_once() == 1
    [row] = await deliveries(scope)
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
        await emit_completed(scope, alice.user_id)
        strict = dispatchers(webhook_allow_private=False, webhook_allowed_networks="127.0.0.1/32")
        assert await strict.run_once() == 1
        [row] = await deliveries(scope)
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
    await emit_completed(scope, alice.user_id, content="PAYLOAD-MARKER-789")
    dispatcher = dispatchers(webhook_retry_schedule="0,0.01")
    dispatcher.start()
    await receiver.wait_for(2)
    await until(lambda: _all_done(scope))
    await dispatcher.stop()
    await emit_completed(scope, alice.user_id, content="PAYLOAD-MARKER-789")  # then one refused at delivery
    await dispatchers(webhook_allow_private=False).run_once()
    logged = caplog.text
    assert "webhook msg_" in logged and "attempt 1 got HTTP 500" in logged and "HTTP 200" in logged
    assert "refused: 127.0.0.1 is a loopback address" in logged
    for secret in (hook.secret, rotated.secret):
        assert secret not in logged and secret.removeprefix("whsec_")[:16] not in logged
    for private in ("tok-PATH-123", "tok-QUERY-456", "PAYLOAD-MARKER-789", "Forty-two"):
        assert private not in logged


async def _all_done(scope: Scope) -> bool:
    return all(d.status == DeliveryStatus.succeeded for d in await deliveries(scope))
