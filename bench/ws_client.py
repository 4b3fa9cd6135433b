"""A headless Reflex client for load benchmarks: Socket.IO over one websocket, no browser.

It speaks just enough of Engine.IO v4 / Socket.IO v5 to do what a tab does: connect with the session
cookie, hydrate and load the page, send a chat message, run the events the server sends back
(streamed text — the `rs` operations of rubin_app/state/stream_channel.py, and `_call_script` pushes — is
recorded like assets/stream.js applies it; state events are sent back like the browser's event queue would),
and answer pings. Each streamed piece is timestamped, so stalls can be measured.
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
APPLY = re.compile(r"window\.rubinStream\.apply\(refs,(\[.*\])\)$")
REPLACE_STATE = re.compile(r"history\.replaceState\(null,'','([^']*)'\)")  # the app gives a new chat its address
RESEND = re.compile(r"window\.rubinStream\.resend\(refs,(\".*?(?<!\\)\")\)")
UNPEND = re.compile(r"window\.rubinStream\.unpend\(refs(?:,(\".*?(?<!\\)\"))?\)")


@dataclass
class Tab:
    """One headless tab: its websocket, what it received and when."""

    base: str
    cookie: str
    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    pieces: list[tuple[float, str]] = field(default_factory=list)
    kept: dict[int, str] = field(default_factory=dict)  # answers whose text the server left to this tab ("d")
    live: str = ""  # the streamed answer as the page shows it
    _ahead: list[str] = field(default_factory=list)
    deltas: list[dict[str, Any]] = field(default_factory=list)
    ws: Any = None
    ssl_context: Any = None  # for wss:// with a private CA (None: the system's CAs)
    _sent_at: int = 0
    _reader: asyncio.Task | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    # The last send, until the page learns it was taken (saved: "p"; refused or failed: unpend), as assets/stream.js
    # keeps it: a tab opened after a reconnect is given its predecessor's, and sends it again when the load says so.
    unacked: dict[str, Any] | None = None
    resent: int = 0
    location: str = "/"  # the address bar: the path opened, then what the app's history.replaceState made it

    async def open(self, path: str = "/") -> None:
        """Connect, hydrate and run the page's on_load."""
        self.path = self.location = path
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
            message = json.loads(raw[len(prefix) :])
            kind, update = message[0], message[1]
            now = time.perf_counter()
            if kind == "rs":
                self._ops(message[1:], now)
                self._changed.set()
                continue
            if kind != "event":
                continue
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
                self.live = piece if ",true)" in code[found.end() :] else self.live + piece
            elif applied := APPLY.search(code):
                self._ops(json.loads(applied.group(1)), now)
            if moved := REPLACE_STATE.search(code):
                self.location = moved.group(1)
            refused = UNPEND.search(code)
            if (
                refused
                and self.unacked
                and (refused.group(1) is None or json.loads(refused.group(1)) == self.unacked["text"])
            ):
                self.unacked = None  # refused or failed: taken
            if resend := RESEND.search(code):
                await self._resend(json.loads(resend.group(1)))
            return
        if name.startswith(STATE):  # an event the server chains (e.g. start_answer): the browser sends it back
            await self.emit(name, event.get("payload", {}))

    def _ops(self, ops: list[str], now: float) -> None:
        """Apply stream operations as assets/stream.js does (offsets in code points; an overlap is skipped, a piece
        ahead of the text before it waits for it)."""
        for op in ops:
            if op == "x":
                self.live, self._ahead = "", []
            elif op[0] == "t":
                at, _, piece = op[1:].partition("|")
                if int(at) > len(self.live):
                    self._ahead.append(op)
                    continue
                piece = piece[len(self.live) - int(at) :]
                if piece:
                    self.live += piece
                    self.pieces.append((now, piece))
                ready = [o for o in self._ahead if int(o[1:].partition("|")[0]) <= len(self.live)]
                self._ahead = [o for o in self._ahead if o not in ready]
                self._ops(ready, now)
            elif op == "p":
                self.unacked = None  # the exchange is saved
            elif op[0] == "d":
                message_id, _, length = op[1:].partition(":")
                assert int(length) == len(self.live), f"streamed {len(self.live)} of {length} characters"
                self.kept[int(message_id)], self.live = self.live, ""

    def text(self) -> str:
        """Everything streamed so far."""
        return "".join(p for _, p in self.pieces)

    async def send(self, text: str, key: str | None = None, again: bool = False) -> float:
        """Send a chat message (with the page's send key, kept until the send is taken); returns the send time."""
        self.pieces.clear()
        self._sent_at = len(self.deltas)
        form = {"text": text}
        if key:
            form["key"] = key
            self.unacked = {"text": text, "key": key, "cid": self._chat(), "before": self._tail_question()[0]}
        if again:
            form["again"] = "1"
        t0 = time.perf_counter()
        await self.emit(f"{CHAT}.send", {"form": form})
        return t0

    def _chat(self) -> str:
        """The chat the address bar names (stream.js chatOfPage): a new chat's first send gives it its address."""
        return self.location.removeprefix("/c/").strip("/") if self.location.startswith("/c/") else ""

    def _tail_question(self) -> tuple[int, str]:
        """(id, text) of the question in the chat's tail as the page last received it."""
        for delta in reversed(self.deltas):
            tail = delta.get(CHAT, {}).get("tail_rx_state_")
            if isinstance(tail, list):
                asked = [m for m in tail if m.get("role") == "user"]
                return (asked[0].get("id", 0), asked[0].get("content", "")) if asked else (0, "")
        return 0, ""

    async def _resend(self, cid: str) -> None:
        """The page's load after a reconnect: a question the last socket took away goes again (stream.js resend)."""
        last, self.unacked = self.unacked, None
        if last is None or last["cid"] != cid:
            return
        asked_id, asked = self._tail_question()
        if asked_id != last["before"] and asked == last["text"]:
            return  # saved: the chat shows it
        self.resent += 1
        await self.send(last["text"], key=last["key"], again=True)

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
