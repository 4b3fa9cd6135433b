"""/api/v1/knowledge over real HTTP (uvicorn on loopback, the app's own ingestion loop with the stand-in parts):
bases, multipart uploads, status until ready, refusals, deletion, and isolation between users' keys."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import rubin_app.knowledge.jobs as jobs_module
from tests.api import conftest as api_conftest
from tests.api.conftest import LiveApp
from tests.api.helpers import new_key, new_user
from tests.fakes.localai_standin import EMBED_DIM, StandIn
from tests.knowledge._parts import Embedder, MemoryIndex, make_parts, paragraphs

start_app = api_conftest.start_app  # the fixtures of the API tests
migrated_template = api_conftest.migrated_template
ADMIN_SCOPES = "chat conversations:read conversations:write admin"


class Api:
    """One key's view of /api/v1/knowledge."""

    def __init__(self, app: LiveApp, key: str) -> None:
        self.http = httpx.Client(base_url=f"{app.url}/api/v1/knowledge", headers={"Authorization": f"Bearer {key}"},
                                 timeout=20)  # fmt: skip
        app.clients.append(self.http)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)

    def upload(self, kb_id: int, *files: tuple[str, bytes]) -> httpx.Response:
        return self.http.post(f"/bases/{kb_id}/files", files=[("files", (n, d, "text/plain")) for n, d in files])

    def wait(self, file_id: int, *, until: tuple[str, ...] = ("ready", "failed", "cancelled")) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while True:
            body = self.http.get(f"/files/{file_id}").json()
            if body["status"] in until or time.monotonic() > deadline:
                return dict(body)
            time.sleep(0.05)


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch, standin: StandIn) -> Iterator[MemoryIndex]:
    """The served app's ingestion job runs on the stand-in parts; the test sees its index."""
    memory = MemoryIndex()
    monkeypatch.setattr(jobs_module, "default_parts", lambda settings, **_: make_parts(Embedder(standin.url), memory))
    yield memory


@pytest.fixture
def users(start_app: Callable[..., LiveApp], index: MemoryIndex, standin: StandIn) -> tuple[LiveApp, Api, Api, Api]:
    """An app with an admin ("root", the first account) and two users, ann and bob; a key each."""
    app = start_app(localai_url=standin.url, knowledge_max_file_mb=1)
    root, ann, bob = (new_user(app, f"{n}@example.com") for n in ("root", "ann", "bob"))
    return app, Api(app, new_key(app, root, ADMIN_SCOPES)), Api(app, new_key(app, ann)), Api(app, new_key(app, bob))


def test_two_files_uploaded_at_once_are_ingested_and_can_be_deleted(
    users: tuple[LiveApp, Api, Api, Api], index: MemoryIndex
) -> None:
    app, _, ann, _ = users
    created = ann.post("/bases", json={"name": "Manuals", "description": "How things work"})
    assert created.status_code == 201
    kb = created.json()
    assert (kb["name"], kb["shared"], kb["mine"]) == ("Manuals", False, True)

    response = ann.upload(kb["id"], ("pump.md", paragraphs(5, "pump")), ("valve.txt", paragraphs(3, "valve")))
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert [f["filename"] for f in accepted["data"]] == ["pump.md", "valve.txt"] and accepted["errors"] == []
    assert {f["status"] for f in accepted["data"]} <= {"queued", "extracting", "embedding"}
    pump, valve = (ann.wait(f["id"]) for f in accepted["data"])
    assert (pump["status"], pump["progress"], pump["chunk_count"], pump["kind"]) == ("ready", 1.0, 5, "markdown")
    assert (valve["status"], valve["chunk_count"]) == ("ready", 3)
    listed = ann.get(f"/bases/{kb['id']}/files").json()
    assert [f["filename"] for f in listed] == ["valve.txt", "pump.md"]
    assert ann.get(f"/bases/{kb['id']}").json()["embedding_dim"] == EMBED_DIM

    assert ann.delete(f"/files/{pump['id']}").status_code == 204
    assert ann.get(f"/files/{pump['id']}").status_code == 404
    assert app.query("SELECT count(*) FROM knowledge_chunks WHERE file_id = :f", f=pump["id"]) == [(0,)]
    assert index.files() == {valve["id"]: 3}
    assert ann.delete(f"/bases/{kb['id']}").status_code == 204
    assert ann.get("/bases").json() == [] and index.entries == {}
    assert app.query("SELECT count(*) FROM knowledge_files") == [(0,)]
    schema = httpx.get(f"{app.url}/api/v1/openapi.json").json()
    upload = schema["paths"]["/knowledge/bases/{kb_id}/files"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"/knowledge/bases", "/knowledge/files/{file_id}", "/knowledge/files/{file_id}/cancel"} <= set(
        schema["paths"]
    )


def test_refusals_are_per_file_with_a_code_and_a_message(users: tuple[LiveApp, Api, Api, Api]) -> None:
    _, _, ann, _ = users
    kb = ann.post("/bases", json={"name": "Mixed"}).json()["id"]
    first = ann.upload(kb, ("a.txt", b"alpha text"))
    assert first.status_code == 202
    again = ann.upload(kb, ("a copy.txt", b"alpha text"))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "duplicate_file" and "a.txt" in again.json()["error"]["message"]
    big = ann.upload(kb, ("big.txt", b"x" * (1024 * 1024 + 1)))
    assert big.status_code == 413 and "1 MB" in big.json()["error"]["message"]

    mixed = ann.upload(
        kb, ("b.txt", b"beta text"), ("a again.txt", b"alpha text"), ("photo.txt", bytes(range(200, 256)))
    )
    assert mixed.status_code == 202
    body = mixed.json()
    assert [f["filename"] for f in body["data"]] == ["b.txt", "photo.txt"]
    assert [(e["filename"], e["code"]) for e in body["errors"]] == [("a again.txt", "kb_duplicate_file")]
    photo = ann.wait(body["data"][1]["id"])
    assert (photo["status"], photo["error"]) == ("failed", "unsupported_type") and photo["error_message"]
    assert ann.wait(body["data"][0]["id"])["status"] == "ready"  # the good file of the same upload goes on
    assert ann.post(f"/bases/{kb}/files", data={"x": "1"}).status_code == 422  # no file at all
    assert ann.post("/bases", json={"name": "  "}).status_code == 422


def test_another_users_bases_and_files_are_not_found_and_shared_ones_are_read_only(
    users: tuple[LiveApp, Api, Api, Api], index: MemoryIndex
) -> None:
    app, root, ann, bob = users
    kb = ann.post("/bases", json={"name": "Private"}).json()["id"]
    file_id = ann.upload(kb, ("secret.txt", paragraphs(2, "secret"))).json()["data"][0]["id"]
    ann.wait(file_id)

    assert bob.get("/bases").json() == []
    for method, path in (("GET", f"/bases/{kb}"), ("GET", f"/bases/{kb}/files"), ("GET", f"/files/{file_id}"),
                         ("DELETE", f"/files/{file_id}"), ("POST", f"/files/{file_id}/cancel"),
                         ("DELETE", f"/bases/{kb}")):  # fmt: skip
        response = bob.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
    assert bob.patch(f"/bases/{kb}", json={"name": "Mine now"}).status_code == 404
    assert bob.upload(kb, ("planted.txt", b"planted")).status_code == 404
    assert ann.get(f"/files/{file_id}").json()["status"] == "ready" and index.files() == {file_id: 2}

    assert bob.patch(f"/bases/{kb}", json={"shared": True}).status_code == 403  # not an admin key
    assert ann.patch(f"/bases/{kb}", json={"shared": True}).status_code == 403  # the owner cannot publish either
    shared = root.patch(f"/bases/{kb}", json={"shared": True})
    assert shared.status_code == 200 and shared.json()["shared"] is True and shared.json()["mine"] is False
    assert [(b["name"], b["mine"]) for b in bob.get("/bases").json()] == [("Private", False)]
    assert bob.get(f"/files/{file_id}").json()["filename"] == "secret.txt"
    assert [f["id"] for f in bob.get(f"/bases/{kb}/files").json()] == [file_id]
    refused = bob.delete(f"/bases/{kb}")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert bob.delete(f"/files/{file_id}").status_code == 403
    assert bob.upload(kb, ("planted.txt", b"planted")).status_code == 403
    assert app.query("SELECT count(*) FROM knowledge_files WHERE kb_id = :k", k=kb) == [(1,)]
    assert index.files() == {file_id: 2}
    assert root.patch(f"/bases/{kb}", json={"shared": False}).json()["shared"] is False
    assert bob.get(f"/bases/{kb}").status_code == 404
