"""Webhooks end to end over real HTTP: endpoints made through /api/v1/webhooks, events raised by what users do
(a conversation, an answer, a key, a sign-up), delivered signed to a real receiver on loopback that verifies
them with the `standardwebhooks` package."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.api.conftest import LiveApp
from tests.api.helpers import new_key, new_user
from tests.fakes.localai_standin import StandIn
from tests.fakes.webhook_receiver import ThreadedReceiver

ADMIN_SCOPES = "chat conversations:read conversations:write admin"


@pytest.fixture
def receiver() -> Iterator[ThreadedReceiver]:
    server = ThreadedReceiver()
    yield server
    server.close()


def api(app: LiveApp, key: str) -> httpx.Client:
    client = httpx.Client(base_url=f"{app.url}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=20)
    app.clients.append(client)
    return client


@pytest.fixture
def live(start_app: Callable[..., LiveApp], standin: StandIn) -> LiveApp:
    return start_app(
        localai_url=standin.url, webhook_allow_private=True, webhook_poll_seconds=0.2,
        webhook_retry_schedule="0,0.2,0.2", title_mode="first_message",
    )  # fmt: skip


def test_a_users_events_arrive_signed_and_only_at_their_own_endpoint(live: LiveApp, receiver: ThreadedReceiver) -> None:
    ann = api(live, new_key(live, new_user(live, "ann@example.com"), ADMIN_SCOPES))
    bob = api(live, new_key(live, new_user(live, "bob@example.com")))
    made = bob.post("/webhooks", json={"url": receiver.url, "events": ["conversation.created", "message.completed"]})
    assert made.status_code == 201, made.text
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_") and "secret" not in bob.get(f"/webhooks/{endpoint['id']}").json()

    exchange = bob.post("/conversations/new/messages", json={"content": "Tell me about rubies", "stream": False})
    ann.post("/conversations/new/messages", json={"content": "Ann's own question", "stream": False})
    created, completed = receiver.verified(endpoint["secret"], 2)
    assert created["type"] == "conversation.created"
    assert created["data"]["conversation_id"] == exchange.json()["conversation_id"]
    assert created["data"]["title"] == "Tell me about rubies"
    assert completed["type"] == "message.completed"
    assert completed["data"]["content"] == exchange.json()["answer"]["content"]
    assert completed["data"]["source"] == "rest" and completed["data"]["completion_tokens"] == 20
    time.sleep(0.5)
    assert len(receiver.received) == 2, "Ann's conversation is not Bob's business"

    log = bob.get(f"/webhooks/{endpoint['id']}/deliveries").json()["items"]
    assert [(d["event_type"], d["status"], d["last_status_code"]) for d in log] == [
        ("message.completed", "succeeded", 204), ("conversation.created", "succeeded", 204),
    ]  # fmt: skip
    again = bob.post(f"/webhooks/{endpoint['id']}/deliveries/{log[0]['id']}/redeliver")
    assert again.status_code == 202
    assert receiver.verified(endpoint["secret"], 3)[2]["id"] == completed["id"]  # the same webhook-id
    assert bob.post(f"/webhooks/{endpoint['id']}/test").status_code == 202
    assert receiver.verified(endpoint["secret"], 4)[3]["type"] == "webhook.test"

    assert ann.get(f"/webhooks/{endpoint['id']}").status_code == 404  # not Ann's, admin or not
    assert ann.delete(f"/webhooks/{endpoint['id']}").status_code == 404


def test_instance_webhooks_see_sign_ups_without_anyones_content(live: LiveApp, receiver: ThreadedReceiver) -> None:
    ann_id = new_user(live, "ann@example.com")
    ann = api(live, new_key(live, ann_id, ADMIN_SCOPES))
    bob = api(live, new_key(live, new_user(live, "bob@example.com")))
    assert bob.post("/webhooks", json={"url": receiver.url, "scope": "instance"}).status_code == 403
    made = ann.post(
        "/webhooks", json={"url": receiver.url, "scope": "instance", "events": ["user.created", "message.completed"]}
    )
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    new_user(live, "carol@example.com")
    bob.post("/conversations/new/messages", json={"content": "private words", "stream": False})
    signed_up, completed = receiver.verified(secret, 2)
    assert signed_up["type"] == "user.created" and signed_up["data"]["email"] == "carol@example.com"
    assert completed["type"] == "message.completed" and "content" not in completed["data"]
    assert "private words" not in json.dumps(completed) and "Echo" not in json.dumps(completed)


def test_private_targets_are_refused_by_default(start_app: Callable[..., LiveApp], receiver: ThreadedReceiver) -> None:
    app = start_app()
    bob = api(app, new_key(app, new_user(app, "bob@example.com")))
    for url in (receiver.url, "http://localhost:9/x", "http://169.254.169.254/latest", "ftp://example.com/x"):
        refused = bob.post("/webhooks", json={"url": url})
        assert refused.status_code == 422, (url, refused.text)
        assert refused.json()["error"]["code"] == "invalid_value"
    assert bob.get("/webhooks").json() == []
