"""Rubin's REST API (/api/v1) over real HTTP: conversations, streamed sends, stop, keys, usage, isolation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveApp
from tests.api.helpers import new_key, new_user
from tests.fakes.localai_standin import StandIn, expected_reply

MODEL = "standin-model"


class Client:
    """One key's view of the API."""

    def __init__(self, app: LiveApp, key: str) -> None:
        self.http = httpx.Client(base_url=f"{app.url}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=20)
        app.clients.append(self.http)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)


def sse(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of a server-sent event stream."""
    event = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


@pytest.fixture
def two_users(start_app: Callable[..., LiveApp], standin: StandIn) -> tuple[LiveApp, Client, Client]:
    """An app with an admin ("ann", the first account) and a user ("bob"), a key each."""
    app = start_app(localai_url=standin.url)
    ann, bob = new_user(app, "ann@example.com"), new_user(app, "bob@example.com")
    return (
        app,
        Client(app, new_key(app, ann, "chat conversations:read conversations:write admin")),
        Client(app, new_key(app, bob)),
    )


def test_a_conversation_from_first_message_to_deletion(two_users: tuple[LiveApp, Client, Client]) -> None:
    _, ann, _ = two_users
    with ann.stream("POST", "/conversations/new/messages", json={"content": "Tell me about rubies"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = list(sse(response))
    names = [name for name, _ in events]
    assert names[0] == "started" and names[-1] == "done" and "delta" in names
    started, done = events[0][1], events[-1][1]
    text = "".join(data.get("content", "") for name, data in events if name == "delta")
    question = [{"role": "user", "content": "Tell me about rubies"}]
    assert text == expected_reply(question)
    assert done["status"] == "complete" and done["completion_tokens"] == 20
    cid = started["conversation_id"]

    page = ann.get("/conversations", params={"q": "rubies"}).json()
    assert [c["id"] for c in page["data"]] == [cid]
    detail = ann.get(f"/conversations/{cid}").json()
    assert [(m["role"], m["status"]) for m in detail["messages"]] == [("user", "complete"), ("assistant", "complete")]
    assert detail["messages"][1]["content"] == text

    exchange = ann.post(f"/conversations/{cid}/messages", json={"content": "And sapphires?", "stream": False}).json()
    assert exchange["answer"]["status"] == "complete" and exchange["answer"]["content"].startswith("Echo: And")
    assert ann.patch(f"/conversations/{cid}", json={"title": "Gems"}).json()["title"] == "Gems"
    assert ann.delete(f"/conversations/{cid}").status_code == 204
    assert ann.get(f"/conversations/{cid}").status_code == 404


def test_another_users_conversation_is_a_404_on_every_route(two_users: tuple[LiveApp, Client, Client]) -> None:
    app, ann, bob = two_users
    cid = ann.post("/conversations", json={"title": "Ann's secrets"}).json()["id"]
    calls = [
        ("GET", f"/conversations/{cid}", None),
        ("PATCH", f"/conversations/{cid}", {"title": "mine now"}),
        ("DELETE", f"/conversations/{cid}", None),
        ("POST", f"/conversations/{cid}/messages", {"content": "hi", "stream": False}),
        ("POST", f"/conversations/{cid}/regenerate", {"stream": False}),
        ("POST", f"/conversations/{cid}/stop", None),
    ]
    for method, path, body in calls:
        response = bob.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert bob.get("/conversations").json()["data"] == []
    [(stored_title,)] = app.query("SELECT title FROM conversations")  # untouched, and sealed at rest
    assert stored_title.startswith("$rv1$") and "secrets" not in stored_title
    assert ann.get(f"/conversations/{cid}").json()["title"] == "Ann's secrets"
    assert int(app.query("SELECT count(*) FROM messages")[0][0]) == 0


def test_stop_ends_a_running_answer_and_keeps_its_text(
    two_users: tuple[LiveApp, Client, Client], standin: StandIn
) -> None:
    _, ann, _ = two_users
    standin.config.token_rate = 20
    seen: list[tuple[str, dict[str, Any]]] = []

    def follow() -> None:
        with ann.stream("POST", "/conversations/new/messages", json={"content": "[[tokens=400]] long"}) as r:
            seen.extend(sse(r))

    reader = threading.Thread(target=follow)
    reader.start()
    deadline = time.monotonic() + 5
    while len([1 for name, _ in seen if name == "delta"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    cid = seen[0][1]["conversation_id"]
    assert ann.post(f"/conversations/{cid}/stop").json() == {"stopped": True}
    reader.join(timeout=10)
    done = seen[-1][1]
    assert (seen[-1][0], done["status"], done["error"]) == ("done", "interrupted", "stopped")
    answer = ann.get(f"/conversations/{cid}").json()["messages"][-1]
    streamed = "".join(d.get("content", "") for n, d in seen if n == "delta")
    assert answer["status"] == "interrupted" and answer["content"] == streamed and len(streamed) > 0


def test_keys_are_listed_created_without_escalation_and_revoked(two_users: tuple[LiveApp, Client, Client]) -> None:
    app, ann, bob = two_users
    made = bob.post("/keys", json={"name": "laptop", "scopes": ["chat"], "expires_days": 7})
    assert made.status_code == 201
    key = made.json()
    assert key["key"].startswith("rk-") and key["scopes"] == ["chat"] and key["expires_at"]
    assert bob.post("/keys", json={"name": "root", "scopes": ["admin"]}).status_code == 403
    listed = bob.get("/keys").json()
    assert {k["name"] for k in listed} == {"test", "laptop"} and all("key" not in k for k in listed)
    assert bob.delete(f"/keys/{key['id']}").json()["revoked_at"]
    laptop = Client(app, key["key"])
    assert laptop.get("/keys").status_code == 401
    ann_key_id = next(k["id"] for k in ann.get("/keys").json())
    assert bob.delete(f"/keys/{ann_key_id}").status_code == 404
    assert bob.get("/admin/keys").status_code == 403
    everyone = ann.get("/admin/keys").json()
    assert {k["owner_email"] for k in everyone} == {"ann@example.com", "bob@example.com"}


def test_usage_counts_ui_like_and_api_answers(two_users: tuple[LiveApp, Client, Client]) -> None:
    _, ann, bob = two_users
    bob.post("/conversations/new/messages", json={"content": "hi", "stream": False})
    bob.post("/conversations/new/messages", json={"content": "hello", "stream": False})
    deadline = time.monotonic() + 5
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        report = bob.get("/usage", params={"by": "source"}).json()
        if report["data"] and report["data"][0]["requests"] == 2:
            break
        time.sleep(0.1)
    assert report["data"] == [
        {"group": "rest", "requests": 2, "prompt_tokens": report["data"][0]["prompt_tokens"], "completion_tokens": 40,
         "total_tokens": report["data"][0]["prompt_tokens"] + 40, "cached": 0, "failed": 0,
         "mean_ttft_ms": report["data"][0]["mean_ttft_ms"]},
    ]  # fmt: skip
    assert ann.get("/usage").json()["data"] == []  # ann's own usage: none
    assert ann.get("/admin/usage", params={"by": "user"}).json()["data"][0]["requests"] == 2
    assert bob.get("/admin/usage").status_code == 403


def test_the_openapi_schema_describes_the_api(two_users: tuple[LiveApp, Client, Client]) -> None:
    app, _, _ = two_users
    schema = httpx.get(f"{app.url}/api/v1/openapi.json").json()
    assert schema["info"]["title"] == "Rubin AI REST API"
    assert {"/conversations", "/conversations/{conversation_id}/messages", "/keys", "/usage"} <= set(schema["paths"])


def test_a_client_that_leaves_mid_answer_still_gets_the_answer_saved(
    two_users: tuple[LiveApp, Client, Client], standin: StandIn
) -> None:
    _, ann, _ = two_users
    standin.config.token_rate = 50
    with ann.stream("POST", "/conversations/new/messages", json={"content": "[[tokens=60]] long one"}) as response:
        events = sse(response)
        started = next(events)[1]
        assert next(events)[0] == "delta"
    # the connection is closed here, mid-answer: the answer goes on and is saved
    deadline = time.monotonic() + 10
    answer: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = ann.get(f"/conversations/{started['conversation_id']}").json()["messages"][-1]
        if answer["status"] != "streaming":
            break
        time.sleep(0.1)
    question = [{"role": "user", "content": "[[tokens=60]] long one"}]
    assert answer["status"] == "complete" and answer["content"] == expected_reply(question)
    assert standin.cancelled == 0
