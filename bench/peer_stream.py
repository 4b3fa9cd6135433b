"""Side-by-side figures 1-3: wire and page bytes per streamed answer, browser time to first token, first load."""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page

from bench.byte_proxy import ByteProxy
from bench.peer_apps import PeerApp
from tests.fakes.localai_standin import reply_to

SETTLE_MS = 1000  # after the answer is done in the DOM: the final state update / save lands in the window too


@dataclass
class WsRecorder:
    """Websocket frames a page receives, as CDP reports them (payload after decompression), and the handshakes."""

    frames: list[int] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)  # kept only with PEER_FRAMES set (see answer_bytes)
    extensions: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext, page: Page) -> None:
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.on("Network.webSocketFrameReceived", self._frame)
        cdp.on("Network.webSocketHandshakeResponseReceived", self._handshake)

    def _frame(self, event: dict[str, Any]) -> None:
        response = event["response"]
        data = response.get("payloadData", "")
        self.frames.append(len(base64.b64decode(data)) if response.get("opcode") == 2 else len(data.encode()))
        if os.environ.get("PEER_FRAMES"):
            self.payloads.append(data)

    def _handshake(self, event: dict[str, Any]) -> None:
        headers = {k.lower(): v for k, v in event["response"].get("headers", {}).items()}
        self.extensions.append(headers.get("sec-websocket-extensions", ""))


def type_into(app: PeerApp, page: Page, text: str) -> None:
    """Put `text` in the composer as a user would (Open WebUI's editor is ProseMirror: fill() does not reach it)."""
    composer = page.locator(app.cfg["composer"])
    if app.name == "Rubin":
        composer.fill(text)
    else:
        composer.click()
        page.keyboard.insert_text(text)
    page.wait_for_timeout(100)


def send(app: PeerApp, page: Page, text: str, timeout: float = 120_000) -> dict[str, float]:
    """Type a message, send it with Enter, wait until the answer is done in the DOM; the page's timings (ms)."""
    type_into(app, page, text)
    page.evaluate("() => window.__peer.arm()")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__peer.doneAt !== null", timeout=timeout)
    timing = page.evaluate(
        "() => ({first: __peer.firstAt === null ? null : __peer.firstAt - __peer.sendAt,"
        " done: __peer.doneAt - __peer.sendAt})"
    )
    if timing["first"] is None:
        raise RuntimeError(f"{app.name}: the answer finished with no text in the page (an error?)")
    return dict(timing)


def open_new_chat(app: PeerApp, page: Page) -> None:
    """Open the app's start page (a new chat), wait for the composer, send one warm-up message (the measured
    answers then go to an existing chat on both sides, with no title request)."""
    page.goto(app.base + "/")
    page.locator(app.cfg["composer"]).wait_for(timeout=120_000)
    page.wait_for_timeout(1500)
    send(app, page, f"warm up {uuid.uuid4().hex[:6]} [[tokens=5]]")
    page.wait_for_timeout(1000)


@dataclass
class StreamPage:
    """A page of one app, proxied (wire bytes) and recorded (page bytes), in a chat ready for answers."""

    app: PeerApp
    page: Page
    ws: WsRecorder


def stream_page(app: PeerApp, browser: Browser) -> StreamPage:
    context = app.context(browser)
    page = context.new_page()
    ws = WsRecorder()
    ws.attach(context, page)
    open_new_chat(app, page)
    return StreamPage(app, page, ws)


def answer_bytes(sp: StreamPage, proxy: ByteProxy, pieces: int) -> dict[str, float]:
    """One streamed answer of `pieces` pieces: wire bytes (server -> browser, Send to done + settle), page-received
    websocket bytes, the answer text's own bytes."""
    question = f"wire probe {uuid.uuid4().hex[:8]} [[tokens={pieces}]]"
    wire0, frames0 = proxy.received(sp.app.port), len(sp.ws.frames)
    timing = send(sp.app, sp.page, question)
    sp.page.wait_for_timeout(SETTLE_MS)
    if dump := os.environ.get("PEER_FRAMES"):  # every frame of the answer, one a line, for reading what is sent
        with open(f"{dump}.{sp.app.name}", "w", encoding="utf-8") as out:
            out.writelines(f"{len(p.encode())}\t{p}\n" for p in sp.ws.payloads[frames0:])
    return {
        "wire": proxy.received(sp.app.port) - wire0,
        "page": sum(sp.ws.frames[frames0:]),
        "frames": len(sp.ws.frames) - frames0,
        "text": len(reply_to(question, tokens=pieces).encode()),
        "done_ms": timing["done"],
    }


def ttft_sample(app: PeerApp, page: Page) -> float:
    """Browser ms from the Enter keydown to the first streamed text in the page (a short answer)."""
    return send(app, page, f"ttft probe {uuid.uuid4().hex[:8]} [[tokens=20]]")["first"]


def first_load(app: PeerApp, browser: Browser, proxy: ByteProxy) -> dict[str, float]:
    """A cold load (fresh context, empty cache) of the signed-in chat page: bytes of every request as CDP counts
    them (encodedDataLength: headers + body as received) and the proxy's wire bytes, until the network is idle."""
    context = app.context(browser)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    sizes: dict[str, float] = {}
    cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
    wire0 = proxy.received(app.port)
    page.goto(app.base + "/")
    page.locator(app.cfg["composer"]).wait_for(timeout=120_000)
    try:
        page.wait_for_load_state("networkidle", timeout=30_000)
    except Exception:  # a page that keeps polling: count what came until then
        pass
    page.wait_for_timeout(1000)
    result = {"cdp": sum(sizes.values()), "requests": len(sizes), "wire": proxy.received(app.port) - wire0}
    context.close()
    return result
