"""Self-test of the LocalAI stand-in over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .localai_standin import StandIn, StandInConfig, expected_reply

MODEL = "standin-model"


@pytest.fixture(scope="module")
def server() -> Iterator[StandIn]:
    """One stand-in for the whole module."""
    with StandIn() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: StandIn) -> None:
    """Reset config and counters before each test."""
    server.config = StandInConfig()
    server.reset()


def _body(text: str, stream: bool = True, **extra: Any) -> dict[str, Any]:
    """Build a chat request body."""
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": stream, **extra}


def _frames(server: StandIn, body: dict[str, Any]) -> list[str]:
    """POST a streaming request and return the raw SSE data payloads."""
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=5) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        return [ln[6:] for ln in r.iter_lines() if ln.startswith("data: ")]


def _content(frames: list[str], key: str = "content") -> str:
    """Join delta fields of all parseable chunk frames."""
    out = []
    for f in frames:
        try:
            obj = json.loads(f)
        except ValueError:
            continue
        for ch in obj.get("choices", []) if isinstance(obj, dict) else []:
            out.append(ch["delta"].get(key, ""))
    return "".join(out)


def test_endpoints_and_auth(server: StandIn) -> None:
    """Models, readiness, health, unknown model and API key checks."""
    r = httpx.get(f"{server.url}/v1/models")
    assert r.json() == {
        "object": "list",
        "data": [{"id": m, "object": "model", "owned_by": "standin"} for m in server.config.models],
    }
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready"}
    server.config.ready = False
    r = httpx.get(f"{server.url}/readyz")
    assert (r.status_code, r.json()) == (503, {"status": "starting"})
    r = httpx.post(f"{server.url}/v1/chat/completions", json={**_body("hi"), "model": "nope"})
    assert r.status_code == 404
    assert r.json()["error"] == {"message": "model 'nope' not found", "type": "invalid_request_error", "code": 404}
    server.config.api_key = "sk-1"
    r = httpx.get(f"{server.url}/v1/models")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["message"] == "An authentication key is required"
    r = httpx.post(
        f"{server.url}/v1/chat/completions", json=_body("hi", stream=False), headers={"Authorization": "Bearer sk-1"}
    )
    assert r.status_code == 200 and server.last_headers["authorization"] == "Bearer sk-1"


def test_stream_default_and_usage(server: StandIn) -> None:
    """Role frame, content pieces, finish frame, usage frame and [DONE]."""
    body = _body("hello there world", stream_options={"include_usage": True})
    frames = _frames(server, body)
    assert frames[-1] == "[DONE]"
    first = json.loads(frames[0])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    filler = " lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore lorem"
    assert _content(frames) == expected_reply(body["messages"]) == "Echo: hello there world" + filler
    assert len(frames) == 1 + 20 + 1 + 1 + 1
    assert json.loads(frames[-3])["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    usage = json.loads(frames[-2])
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 20,
        "total_tokens": 23,
    }
    assert server.last_request_json == body and server.completed == 1 and server.active_streams == 0


def test_a_last_assistant_message_is_continued(server: StandIn) -> None:
    """A partial answer sent as the last assistant message (a resumed answer) gets the rest of the reply, also
    when it ends inside a piece; a prefix the reply does not start with gets the whole reply."""
    question = [{"role": "user", "content": "hello there world"}]
    whole = expected_reply(question)
    for cut in (5, 17, len(whole) - 1):
        body = {**_body(""), "messages": [*question, {"role": "assistant", "content": whole[:cut]}]}
        assert whole[:cut] + _content(_frames(server, body)) == whole
        assert server.records[-1].prefix == whole[:cut]
    body = {**_body(""), "messages": [*question, {"role": "assistant", "content": "Something else"}]}
    assert _content(_frames(server, body)) == whole


def test_markers_and_max_tokens(server: StandIn) -> None:
    """[[tokens]], [[reply]], [[reasoning]] markers and max_tokens truncation."""
    body = _body("a b c d e f", max_tokens=4)
    frames = _frames(server, body)
    assert _content(frames) == "Echo: a b c" == expected_reply(body["messages"], 4)
    assert json.loads(frames[-2])["choices"][0]["finish_reason"] == "length"
    body = _body("x [[tokens=3]]")
    assert _content(_frames(server, body)) == "Echo: x lorem" == expected_reply(body["messages"])
    body = _body("[[reply=Hello, world!]] [[reasoning]]")
    frames = _frames(server, body)
    assert _content(frames) == "Hello, world!" and _content(frames, "reasoning") == "Thinking about it"
    deltas = [json.loads(f)["choices"][0]["delta"] for f in frames[1:4]]
    assert deltas == [{"reasoning": "Thinking"}, {"reasoning": " about"}, {"reasoning": " it"}]
    assert len(frames) == 1 + 3 + 4 + 1 + 1
    r = httpx.post(f"{server.url}/v1/chat/completions", json=_body("[[reply=ok]]", stream=False))
    data = r.json()
    assert data["object"] == "chat.completion" and data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "ok",
    }


def test_timing(server: StandIn) -> None:
    """The ttft and rate markers delay the stream."""
    t0 = time.monotonic()
    _frames(server, _body("[[ttft=0.2]] [[rate=50]] [[tokens=6]]"))
    assert 0.2 + 5 / 50 <= time.monotonic() - t0 < 1.5


def test_http_faults(server: StandIn) -> None:
    """http500, http503 and fail_first_n fail before any stream byte."""
    url = f"{server.url}/v1/chat/completions"
    assert httpx.post(url, json=_body("[[fault=http500]]")).status_code == 500
    r = httpx.post(url, json=_body("[[fault=http503]]"))
    assert (r.status_code, r.headers["retry-after"]) == (503, "2")
    assert r.json() == {"error": {"message": "server busy", "type": "server_error"}}
    server.config.fault, server.config.fail_first_n = "fail_first_n", 2
    codes = [httpx.post(url, json=_body("x")) for _ in range(3)]
    assert [c.status_code for c in codes] == [503, 503, 200] and codes[0].headers["retry-after"] == "0"
    assert server.requests == 5


def test_error_frame_and_malformed(server: StandIn) -> None:
    """Mid-stream error frame, and a malformed frame amid good ones."""
    frames = _frames(server, _body("[[fault=error_frame]] [[tokens=10]]"))
    assert frames[-1] == "[DONE]" and len(frames) == 1 + 5 + 2
    assert json.loads(frames[-2])["error"]["message"] == "backend crashed"
    server.config.fault = "malformed"
    body = _body("q [[tokens=8]]")
    frames = _frames(server, body)
    assert "{not json" in frames and frames[-1] == "[DONE]"
    assert _content(frames) == expected_reply(body["messages"])


def test_drop(server: StandIn) -> None:
    """A dropped stream surfaces as an httpx transport error."""
    got: list[str] = []
    url = f"{server.url}/v1/chat/completions"
    with pytest.raises(httpx.TransportError), httpx.stream("POST", url, json=_body("[[fault=drop]]")) as r:
        got.extend(r.iter_lines())
    assert any("Echo:" in g for g in got) and not any("[DONE]" in g for g in got)
    assert server.dropped == 1 and server.records[-1].outcome == "dropped"


def test_hang_cancelled(server: StandIn) -> None:
    """Closing a hung stream is observed as a cancellation within 1 s."""
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=_body("[[fault=hang]]")) as r:
        lines = r.iter_lines()  # keep the iterator: a collected one closes the response
        first = next(lines)
        assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
        record = server.records[-1]
        assert (record.fault, record.outcome) == ("hang", "pending")
    deadline = time.monotonic() + 1
    while record.outcome == "pending" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert record.outcome == "cancelled" and server.cancelled == 1


def test_hang_before(server: StandIn) -> None:
    """hang_before sends no headers; the client times out and is counted as cancelled."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/chat/completions", json=_body("[[fault=hang_before]]"), timeout=0.3)
    deadline = time.monotonic() + 1
    while server.cancelled < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.cancelled == 1


def test_stop_is_fast_with_hung_stream() -> None:
    """stop() returns quickly even while a stream hangs."""
    srv = StandIn(StandInConfig(fault="hang")).start()
    with httpx.stream("POST", f"{srv.url}/v1/chat/completions", json=_body("x")) as r:
        next(r.iter_lines())
        t0 = time.monotonic()
        srv.stop()
        assert time.monotonic() - t0 < 2
