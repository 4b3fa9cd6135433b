"""Side-by-side figures 4-6: open a 2,000-message chat, scroll up through it, 20 clients sending at once."""

from __future__ import annotations

import time
import uuid

from playwright.sync_api import Browser, Page

from bench.peer_apps import RESULTS, PeerApp
from bench.peer_stream import open_new_chat, type_into

SCROLL_PAGES = 3
SCROLL_SETTLE_MS = 700  # between older pages (Rubin's history.js holds the view for 600 ms)


def open_time(app: PeerApp, page: Page, cid: str) -> float:
    """Navigation start -> the chat's newest answer (its marker) is in the page, ms (warm cache)."""
    page.goto(f"{app.base}/c/{cid}")
    page.wait_for_function("() => window.__peer.openAt !== null", timeout=120_000)
    return float(page.evaluate("() => window.__peer.openAt"))


def scroll_sample(app: PeerApp, page: Page, cid: str) -> dict[str, float]:
    """Open the long chat fresh, let it settle, then scroll up through SCROLL_PAGES older pages: the longest frame
    (gap between animation frames) and the total blocking time (long tasks beyond 50 ms) in that window."""
    open_time(app, page, cid)
    page.wait_for_timeout(1500)
    result = page.evaluate(f"() => window.__peer.scrollUp({SCROLL_PAGES}, {SCROLL_SETTLE_MS})")
    if "error" in result:
        raise RuntimeError(f"{app.name}: {result['error']}")
    return {
        "frame": result["longestFrame"], "tbt": result["tbt"], "task": result["longestTask"],
        "page_ms": max(result["times"]),
    }  # fmt: skip


class Crowd:
    """`n` signed-in pages of one app, each in a chat of its own (warmed up), sending on a shared wall-clock cue."""

    def __init__(self, app: PeerApp, browser: Browser, n: int) -> None:
        self.app = app
        self.context = app.context(browser)
        self.pages = [self.context.new_page() for _ in range(n)]
        for page in self.pages:
            open_new_chat(app, page)

    def round(self, count: int, pieces: int) -> dict[str, float]:
        """`count` pages send at the same moment; first piece per page (ms, its own clock) and the time from the cue
        to the last answer done."""
        pages = self.pages[:count]
        for page in pages:
            type_into(self.app, page, f"crowd {uuid.uuid4().hex[:8]} [[tokens={pieces}]]")
        cue = time.time() * 1000 + 300 + 30 * count
        for page in pages:
            page.evaluate("(at) => { window.__peer.sendAtEpoch(at); return true; }", cue)
        for i, page in enumerate(pages):
            try:
                page.wait_for_function("() => window.__peer.doneAt !== null", timeout=180_000)
            except Exception as exc:
                page.screenshot(path=str(RESULTS / f"peers-crowd-{self.app.port}-{i}.png"))
                state = page.evaluate("() => JSON.stringify({...window.__peer, prev: !!window.__peer.prev})")
                raise RuntimeError(f"{self.app.name}: page {i} of {count} not done: {state[:400]}") from exc
        got = [page.evaluate("() => ({f: __peer.firstAt === null ? null : __peer.firstAt - __peer.sendAt,"
                             " s: __peer.sendEpoch, d: __peer.doneEpoch, x: __peer.failed})")
               for page in pages]  # fmt: skip
        for page in pages:
            page.wait_for_timeout(200 if count > 1 else 500)
        firsts = sorted(g["f"] for g in got if g["f"] is not None)
        return {
            "firsts": firsts,  # type: ignore[dict-item]
            "all_done": max(g["d"] for g in got) - min(g["s"] for g in got),
            "failed": sum(1 for g in got if g["x"]),
        }

    def close(self) -> None:
        self.context.close()
