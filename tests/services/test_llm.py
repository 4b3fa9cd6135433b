"""The LocalAI client against a real HTTP stand-in, in every fault mode the stand-in knows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from rubin_app.llm.client import LLMClient, LLMError
from rubin_app.llm.types import StreamEvent, Usage
from tests.conftest import free_port
from tests.fakes.localai_standin import REASONING, StandIn, expected_reply, prompt_tokens

MODEL = "standin-model"

ClientFactory = Callable[..., LLMClient]


@pytest.fixture
async def make_client(standin: StandIn) -> AsyncIterator[ClientFactory]:
    """Factory of clients for the stand-in (fast timeouts, quick retries); all closed afterwards."""
    clients: list[LLMClient] = []

    def make(base_url: str | None = None, **kw: Any) -> LLMClient:
        options: dict[str, Any] = {"connect_timeout": 2.0, "read_timeout": 5.0, "retries": 0, "backoff": 0.01}
        options.update(kw)
        client = LLMClient(base_url if base_url is not None else standin.url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def ask(text: str) -> list[dict[str, str]]:
    """A one-question conversation."""
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


async def collect(client: LLMClient, messages: list[dict[str, str]], **kw: Any) -> list[StreamEvent]:
    """All events of a stream (raises what the stream raises)."""
    return [event async for event in client.stream_chat(kw.pop("model", MODEL), messages, **kw)]


async def collect_until_error(client: LLMClient, messages: list[dict[str, str]]) -> tuple[str, LLMError]:
    """The content streamed before the stream failed, and the failure."""
    text = ""
    with pytest.raises(LLMError) as info:
        async for event in client.stream_chat(MODEL, messages):
            if event.kind == "delta":
                text += event.text
    return text, info.value


def content(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if e.kind == "delta")


async def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


# --------------------------------------------------------------------------- normal answers


async def test_stream_delivers_the_whole_answer_with_usage_and_finish(
    make_client: ClientFactory, standin: StandIn
) -> None:
    messages = ask("Tell me about rubies")
    events = await collect(make_client(), messages)

    assert content(events) == expected_reply(messages)
    finishes = [e.finish_reason for e in events if e.kind == "done"]
    assert finishes == ["stop"]
    usage = next(e for e in events if isinstance(e, Usage))
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt_tokens(messages), 20)
    # the request really asked for a stream with usage
    assert standin.last_request_json is not None
    assert standin.last_request_json["stream"] is True
    assert standin.last_request_json["stream_options"] == {"include_usage": True}
    assert standin.completed == 1


async def test_stream_sends_max_tokens_and_temperature(make_client: ClientFactory, standin: StandIn) -> None:
    messages = ask("[[tokens=12]] Count to many")
    events = await collect(make_client(), messages, max_tokens=5, temperature=0.3)

    assert content(events) == expected_reply(messages, max_tokens=5)
    assert [e.finish_reason for e in events if e.kind == "done"] == ["length"]
    assert standin.last_request_json is not None
    assert standin.last_request_json["max_tokens"] == 5
    assert standin.last_request_json["temperature"] == 0.3


async def test_reasoning_deltas_arrive_separately_from_the_answer(make_client: ClientFactory) -> None:
    messages = ask("[[reasoning]] Why is the sky blue?")
    events = await collect(make_client(), messages)

    assert "".join(e.text for e in events if e.kind == "reasoning") == "".join(REASONING)
    assert content(events) == expected_reply(messages)
    kinds = [e.kind for e in events]
    assert kinds.index("reasoning") < kinds.index("delta")


async def test_unicode_answer_survives_streaming(make_client: ClientFactory) -> None:
    messages = ask("[[reply=Привет, мир! Рубин — это камень 💎]]")
    events = await collect(make_client(), messages)
    assert content(events) == "Привет, мир! Рубин — это камень 💎"


async def test_malformed_frame_is_skipped_and_the_good_pieces_still_arrive(make_client: ClientFactory) -> None:
    messages = ask("[[fault=malformed]] hello")
    events = await collect(make_client(), messages)
    assert content(events) == expected_reply(messages)
    assert [e.finish_reason for e in events if e.kind == "done"] == ["stop"]


# --------------------------------------------------------------------------- HTTP errors and retries


async def test_http500_fails_as_server_after_all_retries(make_client: ClientFactory, standin: StandIn) -> None:
    standin.config.fault = "http500"
    client = make_client(retries=2, backoff=0.01)
    with pytest.raises(LLMError) as info:
        await collect(client, ask("hi"))
    assert info.value.code == "server"
    assert info.value.status == 500
    assert "internal server error" in info.value.detail
    assert standin.requests == 2 + 1


async def test_http503_is_overloaded_with_retry_after(make_client: ClientFactory, standin: StandIn) -> None:
    standin.config.fault = "http503"
    with pytest.raises(LLMError) as info:
        await collect(make_client(retries=0), ask("hi"))
    assert info.value.code == "overloaded"
    assert info.value.status == 503
    assert info.value.retry_after == 2.0
    assert info.value.detail == "server busy"
    assert standin.requests == 1


async def test_retry_before_the_first_byte_recovers(make_client: ClientFactory, standin: StandIn) -> None:
    standin.config.fault = "fail_first_n"
    standin.config.fail_first_n = 2
    messages = ask("Are you there?")
    events = await collect(make_client(retries=2, backoff=0.01), messages)
    assert content(events) == expected_reply(messages)
    assert standin.requests == 3
    assert standin.errors == 2
    assert standin.completed == 1


async def test_too_few_retries_still_fail_as_overloaded(make_client: ClientFactory, standin: StandIn) -> None:
    standin.config.fault = "fail_first_n"
    standin.config.fail_first_n = 2
    with pytest.raises(LLMError) as info:
        await collect(make_client(retries=1, backoff=0.01), ask("hi"))
    assert info.value.code == "overloaded"
    assert info.value.retry_after == 0.0
    assert standin.requests == 2


async def test_unknown_model_is_not_found_and_not_retried(make_client: ClientFactory, standin: StandIn) -> None:
    with pytest.raises(LLMError) as info:
        await collect(make_client(retries=2), ask("hi"), model="no-such-model")
    assert info.value.code == "not_found"
    assert info.value.status == 404
    assert "no-such-model" in info.value.detail
    assert standin.requests == 1


@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_missing_or_wrong_api_key_is_auth(make_client: ClientFactory, standin: StandIn, key: str | None) -> None:
    standin.config.api_key = "s3cret"
    client = make_client(api_key=key, retries=2)
    with pytest.raises(LLMError) as info:
        await collect(client, ask("hi"))
    assert info.value.code == "auth"
    assert info.value.status == 401
    with pytest.raises(LLMError) as info:
        await client.list_models()
    assert info.value.code == "auth"
    assert standin.requests == 1  # auth failures are not retried


async def test_right_api_key_is_sent_as_bearer(make_client: ClientFactory, standin: StandIn) -> None:
    standin.config.api_key = "s3cret"
    client = make_client(api_key="s3cret")
    messages = ask("hi")
    assert content(await collect(client, messages)) == expected_reply(messages)
    assert standin.last_headers["authorization"] == "Bearer s3cret"
    assert await client.list_models() == ["standin-model", "standin-small"]


# --------------------------------------------------------------------------- failures mid-stream


async def test_error_frame_keeps_partial_text_then_fails_upstream(make_client: ClientFactory) -> None:
    messages = ask("[[fault=error_frame]] tell me a story")
    full = expected_reply(messages)
    text, error = await collect_until_error(make_client(), messages)
    assert error.code == "upstream"
    assert error.detail == "backend crashed"
    assert text
    assert full.startswith(text)
    assert text != full


async def test_dropped_connection_keeps_partial_text_then_fails_dropped(
    make_client: ClientFactory, standin: StandIn
) -> None:
    messages = ask("[[fault=drop]] tell me a story")
    full = expected_reply(messages)
    text, error = await collect_until_error(make_client(), messages)
    assert error.code == "dropped"
    assert text
    assert full.startswith(text)
    assert text != full


async def test_hang_mid_stream_times_out(make_client: ClientFactory) -> None:
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        await collect(make_client(read_timeout=0.5), ask("[[fault=hang]] hi"))
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 3


async def test_hang_before_headers_times_out_without_retrying(make_client: ClientFactory, standin: StandIn) -> None:
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        await collect(make_client(read_timeout=0.5, retries=2), ask("[[fault=hang_before]] hi"))
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 3
    assert standin.requests == 1


# --------------------------------------------------------------------------- unreachable servers


async def test_connection_refused_is_unreachable_quickly(make_client: ClientFactory) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        await collect(client, ask("hi"))
    assert info.value.code == "unreachable"
    assert time.monotonic() - started < 1.5
    with pytest.raises(LLMError) as info:
        await client.list_models()
    assert info.value.code == "unreachable"


@pytest.mark.parametrize("url", ["localhost:8080", "not a url", "ftp://127.0.0.1:8080"])
async def test_invalid_url_is_unreachable(make_client: ClientFactory, url: str) -> None:
    client = make_client(url, retries=2)
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        await collect(client, ask("hi"))
    assert info.value.code == "unreachable"
    assert time.monotonic() - started < 1


# --------------------------------------------------------------------------- models and one-shot answers


async def test_list_models(make_client: ClientFactory, standin: StandIn) -> None:
    standin.config.models = ["zeta", "alpha", "mid"]
    assert await make_client().list_models() == ["alpha", "mid", "zeta"]


async def test_complete_returns_the_whole_answer(make_client: ClientFactory, standin: StandIn) -> None:
    messages = ask("Name this chat")
    answer = await make_client().complete(MODEL, messages, max_tokens=8)
    assert answer == expected_reply(messages, max_tokens=8)
    assert standin.last_request_json is not None
    assert standin.last_request_json["stream"] is False


async def test_complete_maps_errors(make_client: ClientFactory, standin: StandIn) -> None:
    client = make_client()
    with pytest.raises(LLMError) as info:
        await client.complete("missing-model", ask("hi"))
    assert info.value.code == "not_found"
    with pytest.raises(LLMError) as info:
        await client.complete(MODEL, ask("[[fault=malformed]] hi"))
    assert info.value.code == "malformed"


@pytest.mark.parametrize(("fault", "code"), [("drop", "dropped"), ("hang", "timeout"), ("error_frame", "server")])
async def test_complete_failures_are_llm_errors(make_client: ClientFactory, fault: str, code: str) -> None:
    """Title generation relies on complete() raising LLMError only (it falls back on it)."""
    with pytest.raises(LLMError) as info:
        await make_client(read_timeout=0.5).complete(MODEL, ask(f"[[fault={fault}]] name it"))
    assert info.value.code == code


# --------------------------------------------------------------------------- Stop really stops LocalAI


async def test_closing_the_stream_cancels_the_upstream_request(make_client: ClientFactory, standin: StandIn) -> None:
    standin.config.token_rate = 20
    standin.config.tokens = 200
    stream = make_client().stream_chat(MODEL, ask("long answer please"))
    pieces = 0
    async for event in stream:
        pieces += event.kind == "delta"
        if pieces == 3:
            break
    await stream.aclose()
    assert await wait_for(lambda: standin.cancelled == 1, timeout=1.0), "the stand-in never saw the cancel"
    assert standin.records[0].outcome == "cancelled"
    assert standin.records[0].pieces_sent < 50
    assert standin.active_streams == 0


async def test_cancelling_the_reading_task_cancels_the_upstream_request(
    make_client: ClientFactory, standin: StandIn
) -> None:
    standin.config.token_rate = 20
    standin.config.tokens = 200
    client = make_client()
    received: list[str] = []
    three = asyncio.Event()

    async def read() -> None:
        async for event in client.stream_chat(MODEL, ask("long answer please")):
            if event.kind == "delta":
                received.append(event.text)
                if len(received) == 3:
                    three.set()

    task = asyncio.create_task(read())
    await asyncio.wait_for(three.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_for(lambda: standin.cancelled == 1, timeout=1.0), "the stand-in never saw the cancel"
    assert standin.completed == 0

    # the pooled client still works afterwards
    standin.config.token_rate, standin.config.tokens = 0, 20
    messages = ask("short")
    assert content(await collect(client, messages)) == expected_reply(messages)


async def test_a_finished_stream_leaves_its_connection_for_the_next_answer(
    make_client: ClientFactory, standin: StandIn
) -> None:
    """The body is read to its end after `[DONE]`: the next answer reuses the connection (no new handshake)."""
    client = make_client()
    for question in ("first", "second", "third"):
        assert content(await collect(client, ask(question))).startswith("Echo: " + question)
    ports = {record.client_port for record in standin.records}
    assert len(standin.records) == 3 and len(ports) == 1, ports
