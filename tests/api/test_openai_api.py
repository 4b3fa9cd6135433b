"""The OpenAI-compatible API (/v1) through the official `openai` Python SDK, unchanged, with a Rubin key.

The app is served for real (uvicorn on loopback) in front of the LocalAI stand-in; keys are made the way an
operator makes them (`python -m rubin_app keys create`) or written as the service writes them.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from tests.api.conftest import LiveApp
from tests.api.helpers import new_key, new_user
from tests.fakes.localai_standin import EMBED_DIM, StandIn, embedding_of, expected_reply, prompt_tokens
from tests.fakes.redis_server import RedisServer

MODEL = "standin-model"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


_opened: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def sdk(app: LiveApp, key: str | None, **kw: Any) -> openai.OpenAI:
    """The official client, as a developer configures it: Rubin's base URL and a Rubin key (no retries)."""
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key=key or "none", max_retries=0, timeout=20, **kw)
    _opened.append(client)
    return client


@pytest.fixture
def api(start_app: Callable[..., LiveApp], standin: StandIn) -> Callable[..., tuple[LiveApp, str]]:
    """Factory: an app on the stand-in with one user and one key: (app, key)."""

    def make(**settings: Any) -> tuple[LiveApp, str]:
        app = start_app(localai_url=standin.url, **settings)
        return app, new_key(app, new_user(app, "dev@example.com"))

    return make


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- what a developer does


def test_models_and_a_chat_completion_with_usage(api: Callable[..., tuple[LiveApp, str]]) -> None:
    app, key = api()
    client = sdk(app, key)
    assert MODEL in [m.id for m in client.models.list()]
    assert client.models.retrieve(MODEL).id == MODEL

    reply = client.chat.completions.create(model=MODEL, messages=ask("Tell me about rubies"))  # type: ignore[arg-type]

    assert reply.choices[0].message.content == expected_reply(ask("Tell me about rubies"))
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        prompt_tokens(ask("Tell me about rubies")),
        20,
    )
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 20


def test_a_streamed_completion_reassembles_exactly_and_ends_with_usage(
    api: Callable[..., tuple[LiveApp, str]], standin: StandIn
) -> None:
    app, key = api()
    standin.config.token_rate = 40  # a piece every 25 ms: each should go out on its own
    messages = ask("[[reply=Привет, мир! 👋 Rubies are red.]] hi")
    stream = sdk(app, key).chat.completions.create(
        model=MODEL,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    chunks = list(stream)
    text_ = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text_ == "Привет, мир! 👋 Rubies are red."
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    pieces = chunks[-1].usage.completion_tokens
    assert pieces == 8  # the stand-in's pieces of 4 characters
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > pieces // 2, "streamed, not buffered"


def test_parameters_and_tools_reach_the_model_and_tool_calls_come_back(
    api: Callable[..., tuple[LiveApp, str]], standin: StandIn
) -> None:
    app, key = api()
    client = sdk(app, key)
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    reply = client.chat.completions.create(
        model=MODEL, messages=ask("[[tool=search]] rubies near me"), tools=tools, temperature=0.3, top_p=0.9,
        seed=7, stop=["END"], max_tokens=50,
    )  # type: ignore[arg-type]  # fmt: skip
    sent = standin.last_request_json
    assert sent is not None
    assert (sent["temperature"], sent["top_p"], sent["seed"], sent["stop"], sent["max_tokens"]) == (
        0.3,
        0.9,
        7,
        ["END"],
        50,
    )
    assert sent["tools"][0]["function"]["name"] == "search"
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.function.name, call.function.arguments) == ("search", '{"query": "rubies near me"}')  # type: ignore[union-attr]
    assert reply.choices[0].finish_reason == "tool_calls"

    stream = client.chat.completions.create(
        model=MODEL,
        messages=ask("[[tool=search]] rubies near me"),
        tools=tools,
        stream=True,  # type: ignore[arg-type]
    )
    pieces = [c.choices[0].delta for c in stream if c.choices]
    arguments = "".join(tc.function.arguments or "" for d in pieces for tc in (d.tool_calls or []) if tc.function)
    assert arguments == '{"query": "rubies near me"}'


def test_embeddings_pass_through(api: Callable[..., tuple[LiveApp, str]], standin: StandIn) -> None:
    app, key = api()
    result = sdk(app, key).embeddings.create(model=MODEL, input=["ruby", "sapphire"])
    assert [len(item.embedding) for item in result.data] == [EMBED_DIM, EMBED_DIM]
    assert result.data[0].embedding == pytest.approx(embedding_of("ruby"), abs=1e-6)
    assert result.data[0].embedding != result.data[1].embedding
    assert standin.embedding_requests == 1


# --------------------------------------------------------------------------- errors, as the SDK raises them


def test_missing_wrong_expired_and_unscoped_keys_are_refused(api: Callable[..., tuple[LiveApp, str]]) -> None:
    app, key = api()
    user_id = int(app.query("SELECT id FROM users")[0][0])
    expired = new_key(app, user_id, expires="2020-01-01 00:00:00")
    read_only = new_key(app, user_id, scopes="conversations:read")
    for bad in ("", "Bearer", "rk-" + "x" * 40, key[:-2] + "zz", expired):
        with pytest.raises(openai.AuthenticationError) as info:
            sdk(app, bad).chat.completions.create(model=MODEL, messages=ask("hi"))  # type: ignore[arg-type]
        assert info.value.status_code == 401
    response = httpx.get(f"{app.url}/v1/models")
    assert response.status_code == 401 and response.json()["error"]["code"] == "missing_api_key"
    with pytest.raises(openai.PermissionDeniedError) as denied:
        sdk(app, read_only).chat.completions.create(model=MODEL, messages=ask("hi"))  # type: ignore[arg-type]
    assert denied.value.status_code == 403


def test_bad_requests_get_documented_errors(api: Callable[..., tuple[LiveApp, str]], standin: StandIn) -> None:
    app, key = api(api_max_body_bytes=20_000)
    client = sdk(app, key)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model", messages=ask("hi"))  # type: ignore[arg-type]
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.UnprocessableEntityError) as empty:
        client.chat.completions.create(model=MODEL, messages=[])
    assert empty.value.body["param"] == "messages"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError) as bad_type:
        client.chat.completions.create(model=MODEL, messages=ask("hi"), temperature="hot")  # type: ignore[arg-type]
    assert bad_type.value.body["param"] == "temperature"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "robot", "content": "hi"}])  # type: ignore[list-item]
    with pytest.raises(openai.APIStatusError) as too_big:
        client.chat.completions.create(model=MODEL, messages=ask("x" * 30_000))  # type: ignore[arg-type]
    assert too_big.value.status_code == 413
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=ask("hi"), n=2)  # type: ignore[arg-type]
    raw = httpx.post(f"{app.url}/v1/chat/completions", content=b"{not json", headers={"Authorization": f"Bearer {key}"})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"
    assert standin.requests == 0, "nothing invalid reached LocalAI"


def test_model_server_failures_map_to_502_503_504(
    api: Callable[..., tuple[LiveApp, str]], standin: StandIn, closed_port: int
) -> None:
    app, key = api(llm_retries=0, llm_read_timeout=1)
    client = sdk(app, key)
    with pytest.raises(openai.InternalServerError) as busy:
        client.chat.completions.create(model=MODEL, messages=ask("[[fault=http503]] hi"))  # type: ignore[arg-type]
    assert busy.value.status_code == 503
    with pytest.raises(openai.InternalServerError) as slow:
        client.chat.completions.create(model=MODEL, messages=ask("[[fault=hang_before]] hi"), stream=True)  # type: ignore[arg-type]
    assert slow.value.status_code == 504
    with pytest.raises(openai.InternalServerError) as broken:
        client.chat.completions.create(model=MODEL, messages=ask("[[fault=http500]] hi"))  # type: ignore[arg-type]
    assert broken.value.status_code == 502


def test_a_key_rate_limit_answers_429_with_retry_after(api: Callable[..., tuple[LiveApp, str]]) -> None:
    app, _ = api()
    user_id = int(app.query("SELECT id FROM users")[0][0])
    limited = new_key(app, user_id, rpm=2)
    client = sdk(app, limited)
    for _ in range(2):
        client.chat.completions.create(model=MODEL, messages=ask("hi"))  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=ask("hi"))  # type: ignore[arg-type]
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert info.value.code == "rate_limit_exceeded"


def test_a_client_that_leaves_mid_stream_cancels_the_model_request(
    api: Callable[..., tuple[LiveApp, str]], standin: StandIn
) -> None:
    app, key = api()
    standin.config.token_rate = 20
    with httpx.stream(
        "POST", f"{app.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
        json={"model": MODEL, "messages": ask("[[tokens=400]] long"), "stream": True}, timeout=10,
    ) as response:  # fmt: skip
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.monotonic() + 5
    while standin.cancelled < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert standin.cancelled == 1


# --------------------------------------------------------------------------- keys, usage, logs


def test_the_operator_command_makes_and_revokes_keys_and_revocation_is_immediate(
    start_app: Callable[..., LiveApp], standin: StandIn, redis_server: RedisServer
) -> None:
    app = start_app(localai_url=standin.url, redis_url=redis_server.url)
    new_user(app, "ops@example.com")
    env = {**os.environ, "DATABASE_URL": app.db_url, "REDIS_URL": redis_server.url}
    made = subprocess.run(
        [sys.executable, "-m", "rubin_app", "keys", "create", "--email", "ops@example.com", "--name", "ci bot",
         "--scopes", "chat", "--expires-days", "30"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    key = made.stdout.strip()
    assert key.startswith("rk-") and key not in made.stderr
    client = sdk(app, key)
    client.chat.completions.create(model=MODEL, messages=ask("hi"))  # type: ignore[arg-type]  # cached in the worker
    listed = subprocess.run(
        [sys.executable, "-m", "rubin_app", "keys", "list"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert "ci bot" in listed.stdout and key[:11] in listed.stdout and key not in listed.stdout
    key_id = app.query("SELECT id FROM api_keys")[0][0]
    subprocess.run(
        [sys.executable, "-m", "rubin_app", "keys", "revoke", str(key_id)], cwd=ROOT, env=env, timeout=60, check=True,
        capture_output=True,
    )  # fmt: skip
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=MODEL, messages=ask("hi"))  # type: ignore[arg-type]


def test_every_call_is_accounted_and_keys_never_reach_the_logs(
    api: Callable[..., tuple[LiveApp, str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app, key = api()
    client = sdk(app, key)
    client.chat.completions.create(model=MODEL, messages=ask("one"))  # type: ignore[arg-type]
    list(client.chat.completions.create(model=MODEL, messages=ask("two"), stream=True))  # type: ignore[arg-type]
    with pytest.raises(openai.AuthenticationError):
        sdk(app, key + "x").models.list()
    deadline = time.monotonic() + 5
    rows: list[tuple[Any, ...]] = []
    while len(rows) < 2 and time.monotonic() < deadline:
        rows = app.query("SELECT source, api_key_id, prompt_tokens, completion_tokens, status FROM usage_records")
        time.sleep(0.1)
    key_id = app.query("SELECT id FROM api_keys")[0][0]
    assert sorted(rows) == [("api", key_id, 1, 20, "complete")] * 2
    last_used = app.query("SELECT last_used_at, last_used_ip FROM api_keys")[0]
    assert last_used[0] is not None and last_used[1] == "127.0.0.1"
    assert not any(key[3:] in record.getMessage() for record in caplog.records)


def test_a_deterministic_request_is_answered_from_the_cache_the_same_way(
    start_app: Callable[..., LiveApp], standin: StandIn, redis_server: RedisServer
) -> None:
    app = start_app(localai_url=standin.url, redis_url=redis_server.url)
    client = sdk(app, new_key(app, new_user(app, "cache@example.com")))
    question = ask("[[reply=Rubies are red corundum.]] what are rubies?")
    first = client.chat.completions.create(model=MODEL, messages=question, temperature=0)  # type: ignore[arg-type]
    again = client.chat.completions.create(model=MODEL, messages=question, temperature=0)  # type: ignore[arg-type]
    streamed = list(client.chat.completions.create(model=MODEL, messages=question, temperature=0, stream=True))  # type: ignore[arg-type]
    assert first.choices[0].message.content == again.choices[0].message.content == "Rubies are red corundum."
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "Rubies are red corundum."
    assert standin.requests == 1, "the second and third answers came from the cache"
    other = client.chat.completions.create(model=MODEL, messages=question, temperature=0, seed=3)  # type: ignore[arg-type]
    assert other.choices[0].message.content == "Rubies are red corundum." and standin.requests == 2  # another request
    deadline = time.monotonic() + 5
    cached: list[tuple[Any, ...]] = []
    while len(cached) < 4 and time.monotonic() < deadline:
        cached = app.query("SELECT cached FROM usage_records ORDER BY id")
        time.sleep(0.1)
    assert [bool(c[0]) for c in cached] == [False, True, True, False]


def test_parallel_calls_through_a_key_never_overshoot_its_daily_tokens(api: Callable[..., tuple[LiveApp, str]]) -> None:
    """A key with 20 tokens a day, 8 calls at once, each asking for a 30-token answer: an answer is held to what
    the key's reservation left (cut short), the calls past the quota get 429 insufficient_quota, and the key's
    count never passes 20."""
    app, _ = api()
    user_id = int(app.query("SELECT id FROM users")[0][0])
    key = new_key(app, user_id, tpd=20)

    def call(i: int) -> int | str:
        try:
            reply = sdk(app, key).chat.completions.create(model=MODEL, messages=ask(f"[[tokens=30]] q{i}"))  # type: ignore[arg-type]
        except openai.RateLimitError as exc:
            assert exc.code == "insufficient_quota"
            return "refused"
        assert reply.usage is not None
        return reply.usage.total_tokens

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(call, range(8)))
    used = [o for o in outcomes if isinstance(o, int)]
    assert "refused" in outcomes and used, outcomes
    # Usage rows (calls refused for the quota inside the answer count too, with 0 tokens) are written within a
    # second: read until two reads a flush apart agree.
    seen: list[tuple[Any, ...]] = []
    for _ in range(20):
        time.sleep(1.1)
        rows = app.query("SELECT coalesce(sum(prompt_tokens + completion_tokens), 0), count(*) FROM usage_records")
        if rows == seen and rows[0][1] >= len(used):
            break
        seen = rows
    total = int(seen[0][0])
    assert 0 < total <= 20, (total, outcomes)
