"""A streamed answer as an iterator of typed events (sync and async), keeping what it has seen.

Leaving a stream early (`close()`, or the `with` block) closes the connection but does not stop the
answer: Rubin keeps writing it to the conversation. Call the client's `stop(conversation_id)` to stop it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType

import httpx

from rubin_client.errors import RubinConnectionError, from_transport
from rubin_client.events import Delta, Done, SSEDecoder, Started, StreamEvent, decode

_CUT = "the answer's stream ended before its 'done' event"


class _Seen:
    """What a stream has delivered so far."""

    def __init__(self) -> None:
        self.started: Started | None = None
        self.done: Done | None = None
        self._content: list[str] = []
        self._reasoning: list[str] = []

    @property
    def text(self) -> str:
        """The answer's text so far."""
        return "".join(self._content)

    @property
    def reasoning(self) -> str:
        """The answer's reasoning so far."""
        return "".join(self._reasoning)

    @property
    def conversation_id(self) -> str | None:
        """The conversation of the answer, once `started` was read."""
        return self.started.conversation_id if self.started else None

    def _record(self, event: StreamEvent) -> StreamEvent:
        if isinstance(event, Started):
            self.started = event
        elif isinstance(event, Delta):
            self._content.append(event.content)
            self._reasoning.append(event.reasoning)
        else:
            self.done = event
        return event


class EventStream(_Seen):
    """The events of an answer: `Started`, `Delta`..., then `Done` (the last one).

    Iterate it (`for event in stream`), or call `until_done()`; `text`, `reasoning`, `started` and `done`
    hold what was read. A context manager: the connection is closed on exit.
    """

    def __init__(self, response: httpx.Response) -> None:
        super().__init__()
        self.response = response
        self._events = self._read()

    def _read(self) -> Generator[StreamEvent, None, None]:
        decoder = SSEDecoder()
        try:
            for line in self.response.iter_lines():
                raw = decoder.feed(line)
                event = decode(*raw) if raw else None
                if event is not None:
                    yield self._record(event)
                    if isinstance(event, Done):
                        return
            raw = decoder.end()
            event = decode(*raw) if raw else None
            if event is not None:
                yield self._record(event)
            if self.done is None:
                raise RubinConnectionError(_CUT, code="stream_cut")
        except httpx.TransportError as exc:
            raise from_transport(exc) from exc
        finally:
            self.response.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        return next(self._events)

    def until_done(self) -> Done:
        """Read the rest of the stream; its `Done` event."""
        for _ in self:
            pass
        assert self.done is not None
        return self.done

    def close(self) -> None:
        """Close the connection (the answer goes on on the server: use the client's `stop()` to stop it)."""
        self._events.close()
        self.response.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncEventStream(_Seen):
    """The async twin of EventStream: `async for event in stream`, `await until_done()`, `async with`."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__()
        self.response = response
        self._events = self._read()

    async def _read(self) -> AsyncGenerator[StreamEvent, None]:
        decoder = SSEDecoder()
        try:
            async for line in self.response.aiter_lines():
                raw = decoder.feed(line)
                event = decode(*raw) if raw else None
                if event is not None:
                    yield self._record(event)
                    if isinstance(event, Done):
                        return
            raw = decoder.end()
            event = decode(*raw) if raw else None
            if event is not None:
                yield self._record(event)
            if self.done is None:
                raise RubinConnectionError(_CUT, code="stream_cut")
        except httpx.TransportError as exc:
            raise from_transport(exc) from exc
        finally:
            await self.response.aclose()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def until_done(self) -> Done:
        """Read the rest of the stream; its `Done` event."""
        async for _ in self:
            pass
        assert self.done is not None
        return self.done

    async def aclose(self) -> None:
        """Close the connection (the answer goes on on the server: use the client's `stop()` to stop it)."""
        await self._events.aclose()
        await self.response.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
