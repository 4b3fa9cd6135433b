"""Group permissions at every door of the API (issue #13): /v1 through the official `openai` SDK and /api/v1 over
HTTP refuse a model, API keys or webhooks the user's groups do not allow, with a 403 in OpenAI's shape; the
model list shows only the allowed models; an admin is never limited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.api.conftest import LiveApp
from tests.api.helpers import execute, new_key, new_user
from tests.fakes.localai_standin import StandIn, expected_reply

SMALL, BIG = "standin-small", "standin-model"
REFUSAL = f"Your groups do not allow the model “{BIG}”. Pick another one or ask an administrator."


def group(app: LiveApp, name: str, members: list[int], *, models: str = "[]", keys: bool = True,
          hooks: bool = True) -> None:  # fmt: skip
    """A group row and its members, as the group service writes them."""
    execute(
        app,
        "INSERT INTO user_groups (name, models, api_keys, webhooks, knowledge_sharing, created_at, updated_at)"
        " VALUES (:n, :m, :k, :h, true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        n=name, m=models, k=keys, h=hooks,
    )  # fmt: skip
    group_id = app.query("SELECT id FROM user_groups WHERE name = :n", n=name)[0][0]
    for user_id in members:
        execute(
            app, "INSERT INTO user_group_members (group_id, user_id, added_at) VALUES (:g, :u, CURRENT_TIMESTAMP)",
            g=group_id, u=user_id,
        )  # fmt: skip


@pytest.fixture
def team(start_app: Callable[..., LiveApp], standin: StandIn) -> dict[str, Any]:
    """An admin in a restricted group (admins are never limited), an intern limited to the small model, a user
    whose groups allow no API keys (a key made before) and one whose groups allow no webhooks."""
    app = start_app(localai_url=standin.url, webhook_allow_private=True)
    admin, intern = new_user(app, "admin@example.com"), new_user(app, "intern@example.com")
    keyless, hookless = new_user(app, "keyless@example.com"), new_user(app, "hookless@example.com")
    keys = {name: new_key(app, uid) for name, uid in
            (("admin", admin), ("intern", intern), ("keyless", keyless), ("hookless", hookless))}  # fmt: skip
    group(app, "Interns", [intern, admin], models=f'["{SMALL}"]')
    group(app, "No keys", [keyless], keys=False)
    group(app, "No hooks", [hookless], hooks=False)
    return {"app": app, "keys": keys}


def sdk(app: LiveApp, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app.url}/v1", api_key=key, max_retries=0, timeout=20)


def rest(app: LiveApp, key: str) -> httpx.Client:
    client = httpx.Client(base_url=f"{app.url}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=20)
    app.clients.append(client)
    return client


def test_the_openai_sdk_sees_only_allowed_models_and_is_refused_the_others(team: dict[str, Any]) -> None:
    app, keys = team["app"], team["keys"]
    with sdk(app, keys["intern"]) as client:
        assert [m.id for m in client.models.list()] == [SMALL]
        reply = client.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content == expected_reply([{"role": "user", "content": "Hi"}])
        with pytest.raises(openai.PermissionDeniedError) as info:
            client.chat.completions.create(model=BIG, messages=[{"role": "user", "content": "Hi"}])
        assert info.value.status_code == 403
        assert info.value.code == "model_not_allowed"
        assert info.value.body["message"] == REFUSAL  # type: ignore[index]
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model=BIG, messages=[{"role": "user", "content": "Hi"}], stream=True)
        with pytest.raises(openai.PermissionDeniedError):
            client.models.retrieve(BIG)
        with pytest.raises(openai.PermissionDeniedError):
            client.embeddings.create(model=BIG, input="rubies")
    with sdk(app, keys["admin"]) as client:  # the admin is in the same group: admins have every permission
        assert [m.id for m in client.models.list()] == [BIG, SMALL]


def test_the_rest_api_refuses_a_disallowed_model_with_an_openai_shaped_403(team: dict[str, Any]) -> None:
    app, keys = team["app"], team["keys"]
    intern = rest(app, keys["intern"])
    for response in (
        intern.post("/conversations/new/messages", json={"content": "Hi", "model": BIG, "stream": False}),
        intern.post("/conversations", json={"model": BIG}),
    ):
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("permission_error", "model_not_allowed")
        assert error["message"] == REFUSAL
    sent = intern.post("/conversations/new/messages", json={"content": "Hi", "model": SMALL, "stream": False})
    assert sent.status_code == 200 and sent.json()["answer"]["status"] == "complete"
    assert app.query("SELECT count(*) FROM messages WHERE model = :m", m=BIG) == [(0,)]  # nothing saved for it


def test_keys_and_webhooks_the_groups_do_not_allow_are_refused(team: dict[str, Any]) -> None:
    app, keys = team["app"], team["keys"]
    refused = rest(app, keys["keyless"]).get("/conversations")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "api_keys_not_allowed"  # a key made before the change stops working
    with sdk(app, keys["keyless"]) as client, pytest.raises(openai.PermissionDeniedError) as info:
        client.models.list()
    assert info.value.code == "api_keys_not_allowed"
    hookless = rest(app, keys["hookless"])
    made = hookless.post("/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["message.completed"]})
    assert made.status_code == 403 and made.json()["error"]["code"] == "webhooks_not_allowed"
    assert hookless.get("/webhooks").json() == []
    allowed = rest(app, keys["intern"]).post("/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]})
    assert allowed.status_code == 201
    new = hookless.post("/keys", json={"name": "another"})  # hookless may still make keys
    assert new.status_code == 201
