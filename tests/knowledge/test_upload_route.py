"""Reflex's /_upload behind Rubin's binding layer: an upload runs on the tab's session-bound state only when it
comes from the app's own origin with a live session cookie; anything else is refused before Reflex sees it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rubin_app.services import sessions
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from rubin_app.services.sessions import COOKIE_NAME, hash_token
from rubin_app.state.socket import tab_key
from rubin_app.state.uploads import BoundUploads
from tests.factories import make_account

TOKEN = "0f6c2a4e-1111-4222-8333-944455556666"


class Inner:
    """Stands where Reflex's app is: records the headers it was called with."""

    def __init__(self) -> None:
        self.calls: list[dict[bytes, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(dict(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _call(layer: BoundUploads, path: str = "/_upload", **headers: str) -> int:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "method": "POST", "path": path, "scheme": "http", "client": ("127.0.0.1", 5000),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await layer(scope, receive, send)
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


@pytest.fixture
async def signed_in(runtime: Runtime) -> str:
    """A live session's cookie value."""
    async with session_scope() as session:
        user = await make_account(session, email="ann@example.com")
        assert user.id is not None
        return await sessions.create(
            session=session, user_id=user.id, lifetime=timedelta(hours=1), ip="", user_agent=""
        )


async def test_an_upload_runs_on_the_tabs_bound_state_and_only_from_this_site(runtime: Runtime, signed_in: str) -> None:
    inner = Inner()
    layer = BoundUploads(inner, runtime.settings)  # type: ignore[arg-type]
    good = {"host": "rubin.test", "origin": "http://rubin.test", "content_length": "100",
            "cookie": f"{COOKIE_NAME}={signed_in}", "reflex_client_token": TOKEN}  # fmt: skip
    assert await _call(layer, **good) == 200
    assert inner.calls[-1][b"reflex-client-token"] == tab_key(TOKEN, hash_token(signed_in)).encode()
    assert len(inner.calls) == 1

    assert await _call(layer, **{**good, "origin": "http://evil.test"}) == 403
    assert await _call(layer, **{**good, "origin": "http://rubin.test:8080"}) == 403
    assert await _call(layer, **{**good, "cookie": f"{COOKIE_NAME}=made-up"}) == 403
    assert await _call(layer, **{k: v for k, v in good.items() if k != "cookie"}) == 403
    assert await _call(layer, **{**good, "reflex_client_token": "../../x"}) == 403
    assert await _call(layer, **{k: v for k, v in good.items() if k != "content_length"}) == 411
    too_big = str(20 * runtime.settings.knowledge_max_file_mb * 1048576 + (1 << 20) + 1)
    assert await _call(layer, **{**good, "content_length": too_big}) == 413
    assert len(inner.calls) == 1  # none of them reached Reflex

    assert await _call(layer, path="/api/health", host="rubin.test") == 200  # other routes pass untouched
    assert inner.calls[-1] == {b"host": b"rubin.test"}
