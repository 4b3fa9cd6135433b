"""A real HTTP receiver on loopback for the webhook tests: it records every request and answers as told.

A plain asyncio server speaking HTTP/1.1 (one request per connection) in the test's own event loop, so a
test can script its answers (status codes, redirects, a request held open for ever) and read what arrived
exactly as it went over the wire. Verification uses the standardwebhooks package, like a real receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Reply:
    """One scripted answer: a status, a body and headers; `hold` never answers (until the client goes away)."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False


@dataclass
class Received:
    """One request as it arrived."""

    at: float  # time.monotonic()
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def verifies_with(self, secret: str) -> bool:
        """Whether the standardwebhooks reference implementation accepts the request with `secret`."""
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return False
        return True


class Receiver:
    """Listens on `host` (a loopback address) and a free port; `replies` are used in order, then 200."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.replies: list[Reply] = []
        self.received: list[Received] = []
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` requests, once they have arrived (AssertionError after `timeout`)."""
        async with self._arrived:
            try:
                await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), timeout)
            except TimeoutError:
                raise AssertionError(f"{len(self.received)} of {count} requests arrived in {timeout} s") from None
        return self.received[:count]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        async with self._arrived:
            self.received.append(Received(time.monotonic(), method, path, headers, body))
            self._arrived.notify_all()
        reply = self.replies.pop(0) if self.replies else Reply()
        if reply.hold:
            await reader.read()  # until the client closes the connection (or dies)
            return
        extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
        writer.write(
            f"HTTP/1.1 {reply.status} Status\r\ncontent-length: {len(reply.body)}\r\nconnection: close\r\n{extra}\r\n"
            .encode("latin-1") + reply.body
        )  # fmt: skip
        await writer.drain()
