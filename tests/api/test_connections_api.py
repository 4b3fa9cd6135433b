"""Model connections at the HTTP doors: /v1 lists and answers every connection's models (a cloud-style one that
needs a bearer key included) through the official SDK, admins see each connection's health, and the key shows
nowhere — not in a response, not in a log line."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from rubin_app import config as config_module
from rubin_app.connections.sealing import seal_key
from rubin_app.connections.service import normalize_url
from tests.api.conftest import LiveApp
from tests.api.helpers import execute, new_key, new_user
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


def _connection(app: LiveApp, connection_id: int, name: str, url: str, *, key: str = "", prefix: str = "") -> None:
    """A connection row as the admin service writes it (the key sealed for its row)."""
    execute(
        app,
        "INSERT INTO model_connections (id, name, base_url, api_key_sealed, prefix, models, capabilities, enabled,"
        " created_at, updated_at) VALUES (:i, :n, :u, :k, :p, '[]', '{}', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        i=connection_id, n=name, u=normalize_url(url), p=prefix,
        k=seal_key(connection_id, key, config_module.get_settings()),
    )  # fmt: skip


@pytest.fixture
def live(start_app: Callable[..., LiveApp], standin: StandIn, cloud: StandIn) -> tuple[LiveApp, Any, str]:
    """The app on the stand-in plus the cloud connection and one that is down: (app, admin browser, user key)."""
    cloud.reset()
    app = start_app(localai_url=standin.url)
    admin = app.client()
    assert app.sign_up(admin, "admin@example.com").status_code == 303  # the first account: the admin
    _connection(app, 1, "Cloud", cloud.url + "/v1", key=CLOUD_KEY, prefix="cloud/")
    _connection(app, 2, "Spare", f"http://127.0.0.1:{free_port()}")
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
