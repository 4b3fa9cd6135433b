"""Model connections at the HTTP doors: /v1 lists and answers every connection's models (a cloud-style one that
needs a bearer key included) through the official SDK, admins see each connection's health, and the key shows
nowhere — not in a response, not in a log line."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.api.conftest import LiveApp
from tests.api.helpers import new_key, new_user
from tests.conftest import free_port
from tests.fakes.localai_standin import StandIn, StandInConfig

CLOUD_KEY = "sk-or-v1-4b8e0c2f9a7d1e6b3c5a"


@pytest.fixture(scope="module")
def cloud() -> Iterator[StandIn]:
    """A cloud-style server: its own models, and a bearer key it insists on."""
    server = StandIn(StandInConfig(models=["cloud-chat", "cloud-embed-small"], api_key=CLOUD_KEY)).start()
    try:
        yield server
    finally:
        server.stop()


def _connection(app: LiveApp, admin_key: str, name: str, url: str, *, key: str = "", prefix: str = "") -> None:
    """Add a connection as an admin's program does (POST /api/v1/admin/connections)."""
    body = {"name": name, "base_url": url, "api_key": key, "prefix": prefix}
    response = app.client().post(
        "/api/v1/admin/connections", json=body, headers={"Authorization": f"Bearer {admin_key}"}
    )
    assert response.status_code == 201, response.text


@pytest.fixture
def live(start_app: Callable[..., LiveApp], standin: StandIn, cloud: StandIn) -> tuple[LiveApp, Any, str]:
    """The app on the stand-in plus the cloud connection and one that is down: (app, admin browser, user key)."""
    cloud.reset()
    app = start_app(localai_url=standin.url)
    admin = app.client()
    assert app.sign_up(admin, "admin@example.com").status_code == 303  # the first account: the admin
    admin_id = int(app.query("SELECT id FROM users WHERE email = 'admin@example.com'")[0][0])
    admin_key = new_key(app, admin_id, scopes="chat admin")
    _connection(app, admin_key, "Cloud", cloud.url + "/v1", key=CLOUD_KEY, prefix="cloud/")
    _connection(app, admin_key, "Spare", f"http://127.0.0.1:{free_port()}")
    return app, admin, new_key(app, new_user(app, "dev@example.com"))


def test_v1_lists_and_answers_every_connections_models(live, cloud: StandIn, standin: StandIn) -> None:
    app, _, key = live
    with openai.OpenAI(base_url=f"{app.url}/v1", api_key=key, max_retries=0, timeout=20) as client:
        models = {m.id: m for m in client.models.list()}
        assert list(models) == ["standin-model", "standin-small", "cloud/cloud-chat", "cloud/cloud-embed-small"]
        assert models["cloud/cloud-embed-small"].model_extra == {"connection": "Cloud", "capabilities": ["embeddings"]}
        assert client.models.retrieve("cloud/cloud-chat").model_extra["connection"] == "Cloud"

        answer = client.chat.completions.create(
            model="cloud/cloud-chat", messages=[{"role": "user", "content": "Hello from the SDK"}]
        )
        assert answer.model == "cloud/cloud-chat" and answer.choices[0].message.content
        assert [r.model for r in cloud.records] == ["cloud-chat"] and not standin.records
        assert cloud.last_headers["authorization"] == f"Bearer {CLOUD_KEY}"

        vectors = client.embeddings.create(model="cloud/cloud-embed-small", input=["one", "two"])
        assert len(vectors.data) == 2 and vectors.model == "cloud/cloud-embed-small"
        assert cloud.embedding_requests == 1

        local = client.chat.completions.create(model="standin-small", messages=[{"role": "user", "content": "Hi"}])
        assert local.choices[0].message.content and [r.model for r in standin.records] == ["standin-small"]


def test_admins_see_each_connections_health_and_the_key_shows_nowhere(live, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    app, admin, key = live
    listed = app.client().get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert listed.status_code == 200 and "cloud/cloud-chat" in listed.text
    health = admin.get("/api/health").json()
    connections = {c["name"]: c for c in health["connections"]}
    assert connections["LocalAI"]["ok"] and connections["Cloud"]["ok"] and connections["Cloud"]["models"] == 2
    assert (connections["Spare"]["ok"], connections["Spare"]["error"]) == (False, "unreachable")
    assert health["status"] == "ok"  # one connection down does not make the instance degraded
    anonymous = app.client().get("/api/health").json()
    assert "connections" not in anonymous  # names of internal servers: admins only
    for text in (listed.text, str(health), caplog.text):
        assert CLOUD_KEY not in text
    assert all(CLOUD_KEY not in row[0] for row in app.query("SELECT api_key_sealed FROM model_connections"))


def test_an_admin_program_manages_connections_and_nobody_else_can(live, cloud: StandIn) -> None:
    app, _, user_key = live
    admin_id = int(app.query("SELECT id FROM users WHERE email = 'admin@example.com'")[0][0])
    user_id = int(app.query("SELECT id FROM users WHERE email = 'dev@example.com'")[0][0])
    admin = app.client()
    admin.headers["Authorization"] = f"Bearer {new_key(app, admin_id, scopes='chat admin')}"
    user = app.client()
    user.headers["Authorization"] = f"Bearer {user_key}"

    body = {"name": "Second cloud", "base_url": cloud.url, "api_key": CLOUD_KEY, "prefix": "two/"}
    created = admin.post("/api/v1/admin/connections", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["has_key"] and "api_key" not in created.json() and CLOUD_KEY not in created.text
    cid = created.json()["id"]
    assert "two/cloud-chat" in user.get("/v1/models").text  # on the list at once
    listed = admin.get("/api/v1/admin/connections")
    assert [c["name"] for c in listed.json()] == ["Cloud", "Spare", "Second cloud"] and CLOUD_KEY not in listed.text
    off = admin.patch(f"/api/v1/admin/connections/{cid}", json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert "two/cloud-chat" not in user.get("/v1/models").text
    caps = admin.put(f"/api/v1/admin/connections/{cid}/capabilities/cloud-chat", json={"capabilities": ["vision"]})
    assert caps.json() == {"cloud-chat": ["vision"]}
    bad = admin.post("/api/v1/admin/connections", json={**body, "name": "x@y"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_value")

    # A chat key is not an admin key; an `admin` key of someone who is no admin is refused by the service.
    assert user.get("/api/v1/admin/connections").status_code == 403
    sneaky = app.client()
    sneaky.headers["Authorization"] = f"Bearer {new_key(app, user_id, scopes='chat admin')}"
    refused = sneaky.delete(f"/api/v1/admin/connections/{cid}")
    assert refused.status_code == 403
    assert admin.delete(f"/api/v1/admin/connections/{cid}").status_code == 204
    assert admin.delete(f"/api/v1/admin/connections/{cid}").status_code == 404
    assert [c["name"] for c in admin.get("/api/v1/admin/connections").json()] == ["Cloud", "Spare"]
