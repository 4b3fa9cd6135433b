"""Assistants over HTTP: /api/v1/assistants (create, share, export, import) and an assistant as `model` in /v1
through the official OpenAI SDK — its system prompt and parameters reach the model; another user never reaches a
private one (list, id, model name, export)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.api.conftest import LiveApp
from tests.api.helpers import new_key, new_user
from tests.fakes.localai_standin import StandIn, expected_reply

PIRATE = {"name": "Pirate", "emoji": "🏴‍☠️", "base_model": "standin-model", "system_prompt": "Talk like a pirate.",
          "temperature": 0.3, "max_tokens": 5, "starters": ["Ahoy?"]}  # fmt: skip


@pytest.fixture
def two_users(start_app: Callable[..., LiveApp], standin: StandIn) -> Iterator[tuple[LiveApp, str, str]]:
    """An app on the stand-in with an admin (the first account) and a user, one key each."""
    app = start_app(localai_url=standin.url)
    admin = new_key(app, new_user(app, "admin@example.com"))
    user = new_key(app, new_user(app, "user@example.com"))
    yield app, admin, user


def rest(app: LiveApp, key: str) -> httpx.Client:
    client = httpx.Client(base_url=f"{app.url}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=20)
    app.clients.append(client)
    return client


def sdk(app: LiveApp, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app.url}/v1", api_key=key, max_retries=0, timeout=20)


def ids(client: openai.OpenAI) -> list[str]:
    return [m.id for m in client.models.list()]


def test_an_assistant_as_the_model_of_the_openai_api(two_users: tuple[LiveApp, str, str], standin: StandIn) -> None:
    app, admin_key, user_key = two_users
    made = rest(app, admin_key).post("/assistants", json=PIRATE)
    assert made.status_code == 201, made.text
    assert made.json()["model"] == "asst:pirate" and made.json()["owned"] is True
    with sdk(app, admin_key) as client:
        assert "asst:pirate" in ids(client) and "standin-model" in ids(client)
        assert client.models.retrieve("asst:pirate").id == "asst:pirate"
        answer = client.chat.completions.create(
            model="asst:pirate",
            messages=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello there"}],
        )
    sent = standin.last_answer_json
    assert sent is not None and sent["model"] == "standin-model"
    assert [m["content"] for m in sent["messages"][:2]] == ["Talk like a pirate.", "Be kind."]
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 5
    assert answer.choices[0].message.content == expected_reply(sent["messages"], max_tokens=5)
    assert answer.usage is not None and answer.usage.completion_tokens == 5  # the assistant's max_tokens
    with sdk(app, user_key) as client:  # another user: the private assistant does not exist for them
        assert "asst:pirate" not in ids(client)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="asst:pirate", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("asst:pirate")


def test_rest_isolation_sharing_and_export_import(two_users: tuple[LiveApp, str, str], standin: StandIn) -> None:
    app, admin_key, user_key = two_users
    admin, user = rest(app, admin_key), rest(app, user_key)
    made = admin.post("/assistants", json=PIRATE).json()
    path = f"/assistants/{made['id']}"
    assert user.get("/assistants").json() == []
    for response in (user.get(path), user.put(path, json=PIRATE), user.delete(path),
                     user.get("/assistants/export", params={"ids": made["id"]})):  # fmt: skip
        assert response.status_code == 404, response.text
    bad = user.post("/assistants", json={"name": "No model"})
    assert bad.status_code == 422 and "base_model" in bad.json()["error"]["message"]
    assert user.put(f"{path}/shared", json={"shared": True}).status_code in (403, 404)
    assert admin.put(f"{path}/shared", json={"shared": True}).json()["shared"] is True
    listed = user.get("/assistants").json()
    assert [(a["model"], a["owned"]) for a in listed] == [("asst:pirate", False)]
    with sdk(app, user_key) as client:
        client.chat.completions.create(model="asst:pirate", messages=[{"role": "user", "content": "Hi"}])
    assert (
        standin.last_answer_json is not None
        and standin.last_answer_json["messages"][0]["content"] == PIRATE["system_prompt"]
    )
    assert user.put(path, json={**PIRATE, "name": "Mine"}).status_code == 404  # shared is usable, not changeable
    # Export (the admin's own) and import (as the user's own copy); a bad file is refused with its reason.
    exported = admin.get("/assistants/export")
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    doc: dict[str, Any] = exported.json()
    assert doc["format"] == "rubin.assistants" and [a["name"] for a in doc["assistants"]] == ["Pirate"]
    imported = user.post("/assistants/import", content=exported.content)
    assert imported.status_code == 201 and imported.json()[0]["owned"] is True
    doc["assistants"][0]["temperature"] = 9
    refused = user.post("/assistants/import", json=doc)
    assert refused.status_code == 422 and "assistants.0.temperature" in refused.json()["error"]["message"]
    assert user.post("/assistants/import", content=b"{oops").status_code == 422
    assert len(user.get("/assistants").json()) == 1  # the own copy wins over the shared one of the same name
    assert user.delete(f"/assistants/{imported.json()[0]['id']}").status_code == 204
    assert admin.get(path).status_code == 200


def test_an_assistant_on_a_model_the_users_groups_do_not_allow(
    start_app: Callable[..., LiveApp], standin: StandIn
) -> None:
    from tests.api.test_groups_api import group

    app = start_app(localai_url=standin.url)
    new_user(app, "admin@example.com")
    intern = new_user(app, "intern@example.com")
    group(app, "interns", [intern], models='["standin-small"]')
    key = new_key(app, intern)
    http = rest(app, key)
    assert http.post("/assistants", json={**PIRATE, "name": "Big"}).status_code == 201
    assert http.post("/assistants", json={**PIRATE, "name": "Small", "base_model": "standin-small"}).status_code == 201
    with sdk(app, key) as client:
        listed = ids(client)
        assert "asst:small" in listed and "asst:big" not in listed
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="asst:big", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("asst:big")
        client.chat.completions.create(model="asst:small", messages=[{"role": "user", "content": "hi"}])
    assert standin.last_answer_json is not None and standin.last_answer_json["model"] == "standin-small"
