"""A headless Reflex client for load benchmarks: Socket.IO over one websocket, no browser.

It speaks just enough of Engine.IO v4 / Socket.IO v5 to do what a tab does: connect with the session
cookie, hydrate and load the page, send a chat message, run the events the server sends back
(`_call_script` pushes of streamed text are recorded; state events are sent back like the browser's
event queue would), and answer pings. Each streamed piece is timestamped, so stalls can be measured.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import websockets

STATE = "reflex___state____state"
CHAT = f"{STATE}.rubin_app___state___auth____auth_state.rubin_app___state___chat____chat_state"
NAMESPACE = "/_event"  # Reflex's Socket.IO namespace (the frontend connects to <backend>/_event)
PUSH = re.compile(r"window\.rubin\.stream\(refs,(\".*?(?<!\\)\"),")


@dataclass
class Tab:
    """One headless tab: its websocket, what it received and when."""

    base: str
    cookie: str
    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    pieces: list[tuple[float, str]] = field(default_factory=list)
    deltas: list[dict[str, Any]] = field(default_factory=list)
    ws: Any = None
    ssl_context: Any = None  # for wss:// with a private CA (None: the system's CAs)
    _sent_at: int = 0
    _reader: asyncio.Task | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self, path: str = "/") -> None:
        """Connect, hydrate and run the page's on_load."""
        self.path = path
        url = self.base.replace("http", "ws", 1) + f"/_event/?EIO=4&transport=websocket&token={self.token}"
        tls = {"ssl": self.ssl_context} if self.ssl_context is not None else {}
        self.ws = await websockets.connect(
            url, additional_headers={"Cookie": f"rubin_session={self.cookie}"}, max_size=None, open_timeout=30, **tls
        )
        opening = await self.ws.recv()
        assert str(opening).startswith("0"), opening
        await self.ws.send(f"40{NAMESPACE},")
        self._reader = asyncio.create_task(self._read())
        await self.emit(f"{STATE}.hydrate_and_load", {})

    def _router(self) -> dict[str, Any]:
        return {"pathname": self.path, "asPath": self.path}

    async def emit(self, name: str, payload: dict[str, Any]) -> None:
        """Send an event the way the browser's queue does."""
        event = {"name": name, "payload": payload, "router_data": self._router()}
        await self.ws.send(f"42{NAMESPACE}," + json.dumps(["event", event]))

    async def _read(self) -> None:
        async for raw in self.ws:
            if raw == "2":  # Engine.IO ping
                await self.ws.send("3")
                continue
            prefix = f"42{NAMESPACE},"
            if not str(raw).startswith(prefix):
                continue
            kind, update = json.loads(raw[len(prefix) :])[:2]
            if kind != "event":
                continue
            now = time.perf_counter()
            if update.get("delta"):
                self.deltas.append(update["delta"])
            for event in update.get("events", []):
                await self._run(event, now)
            self._changed.set()

    async def _run(self, event: dict[str, Any], now: float) -> None:
        name = event.get("name", "")
        if name == "_call_script":
            code = event.get("payload", {}).get("javascript_code", "")
            found = PUSH.search(code)
            if found and (piece := json.loads(found.group(1))):
                self.pieces.append((now, piece))
            return
        if name.startswith(STATE):  # an event the server chains (e.g. start_answer): the browser sends it back
            await self.emit(name, event.get("payload", {}))

    def text(self) -> str:
        """Everything streamed so far."""
        return "".join(p for _, p in self.pieces)

    async def send(self, text: str) -> float:
        """Send a chat message; returns the send time (perf_counter)."""
        self.pieces.clear()
        self._sent_at = len(self.deltas)
        t0 = time.perf_counter()
        await self.emit(f"{CHAT}.send", {"form": {"text": text}})
        return t0

    async def wait_done(self, timeout: float = 120.0) -> bool:
        """Wait until the answer finished (`streaming_id` went back to 0 in a delta)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for delta in self.deltas[self._sent_at :]:
                if delta.get(CHAT, {}).get("streaming_id_rx_state_") == 0:
                    return True
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=1.0)
            except TimeoutError:
                pass
        return False

    async def close(self) -> None:
        """Close the websocket."""
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()
