"""AsyncRubinClient: the same calls as RubinClient, awaited, against a running Rubin."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rubin_client import AsyncEventStream, AsyncRubinClient, Delta, Done, NotFound, RateLimited, Started

from tests.api.helpers import new_key
from tests.fakes.localai_standin import StandIn, expected_reply
from tests.sdk.conftest import Rubin


async def test_a_conversation_through_the_async_client(rubin: Rubin, standin: StandIn) -> None:
    standin.config.token_rate = 50
    key = new_key(rubin.app, rubin.bob_id)
    async with AsyncRubinClient(rubin.app.url + "/api/v1/", key, timeout=20) as bob:
        stream = await bob.stream(None, "Tell me about rubies")
        assert isinstance(stream, AsyncEventStream)
        async with stream:
            events = [event async for event in stream]
        assert isinstance(events[0], Started) and isinstance(events[-1], Done) and events[-1].ok
        text = "".join(e.content for e in events if isinstance(e, Delta))
        assert text == stream.text == expected_reply([{"role": "user", "content": "Tell me about rubies"}])
        cid = events[0].conversation_id

        exchange = await bob.send(cid, "And sapphires?")
        assert exchange.answer.content == expected_reply([{"role": "user", "content": "And sapphires?"}])
        again = await bob.stream_regenerate(cid)
        assert (await again.until_done()).ok and again.text == exchange.answer.content
        await bob.rename(cid, "Gems")
        assert [c.title async for c in bob.iter_conversations(q="gem", page_size=1)] == ["Gems"]
        detail = await bob.conversation(cid, limit=2)
        assert detail.has_older and [m.role for m in detail.messages] == ["user", "assistant"]
        assert [k.name for k in await bob.keys()] == ["test", "test"]
        assert await bob.stop(cid) is False
        await bob.delete(cid)
        with pytest.raises(NotFound):
            await bob.conversation(cid)
        with pytest.raises(NotFound):
            await bob.stream(cid, "still there?")


async def test_the_async_client_raises_rate_limited(rubin_factory: Callable[..., Rubin]) -> None:
    rubin = rubin_factory(rate_limit_rpm=1)
    async with AsyncRubinClient(rubin.app.url, new_key(rubin.app, rubin.bob_id), timeout=20) as bob:
        await bob.send(None, "one")
        with pytest.raises(RateLimited) as info:
            await bob.send(None, "two")
    assert info.value.retry_after is not None and info.value.retry_after >= 1
