"""Long-chat benchmark: opening a 2,000-message chat, streaming into it, and the first load's JS/CSS bytes.

In one run, against the LocalAI stand-in, in Debian Chromium (browser clock throughout):
  (a) time to open a chat (navigation start -> its newest answer is on the page), 2,000-message chat
      vs 2-message chat, and the websocket bytes the opening brings;
  (b) time per streamed delta (websocket frame received -> the streamed text changed in the page) in the
      2,000-message chat — as opened, and again with all 2,000 messages scrolled in — vs a 2-message chat;
  (c) time to bring in one older page while scrolling up (scroll to the top -> the page is on screen);
  (d) bytes of JavaScript and CSS the first page load transfers (cold cache).
Usage: scripts/bench.sh longchat [--runs N] [--root DIR]  (or: python -m bench.longchat_bench)
`--root` runs another checkout (e.g. a copy of the code before paging) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from bench.harness import (
    BENCH_EMAIL,
    CHROMIUM_ARGS,
    ROOT,
    STREAM_PIECE_RE,
    WS_PROBE,
    launch,
    percentile,
    print_table,
    session_cookie,
    sign_in,
)

LONG, SHORT = 2000, 2
STREAM_TOKENS, STREAM_RATE = 300, 100
DONE_JS = (
    "() => !document.querySelector('[data-testid=stop]') && !document.querySelector('[data-testid=streaming-answer]')"
)

# Browser-side probes: when the newest answer (its text carries a marker) first shows, and how long each
# streamed websocket frame takes to reach the page's text.
PROBE = """
(() => {
  window.__open = {marker: null, at: null};
  (function watch() {
    const m = window.__open.marker || (sessionStorage.getItem('bench_marker') || '');
    if (m && window.__open.at === null) {
      const all = document.querySelectorAll('[data-testid=assistant-message]');
      const last = all[all.length - 1];
      if (last && last.textContent.includes(m)) window.__open.at = performance.now();
    }
    if (window.__open.at === null) requestAnimationFrame(watch);
  })();
  window.__delta = {pending: null, lat: []};
  const STREAM_PIECE = __STREAM_PIECE__;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', (ev) => {
        if (typeof ev.data === 'string' && STREAM_PIECE.test(ev.data))
          window.__delta.pending = window.__delta.pending ?? performance.now();
      });
    }
  };
  new MutationObserver((records) => {
    const d = window.__delta;
    if (d.pending === null) return;
    for (const r of records) {
      const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (el && el.closest && el.closest('[data-testid=streaming-answer]')) {
        d.lat.push(performance.now() - d.pending);
        d.pending = null;
        return;
      }
    }
  }).observe(document, {subtree: true, childList: true, characterData: true});
})();
""".replace("__STREAM_PIECE__", STREAM_PIECE_RE)


def text_of(i: int, last: bool) -> str:
    """Chat-like Markdown: questions, answers with lists, now and then a code block."""
    if i % 2 == 0:
        return f"Question {i}: how do I do thing number {i} with the service, and why does it fail sometimes?"
    parts = [f"Answer {i}. " + "Here is a careful explanation of the behaviour with **emphasis** and `code`. " * 3]
    parts.append("\n".join(f"- step {k}: do the thing, then check the output" for k in range(4)))
    if i % 10 == 1:
        parts.append("```python\nfor item in items:\n    print(item.name, item.value)\n```")
    if last:
        parts.append("BENCH-LAST-ANSWER")
    return "\n\n".join(parts)


def seed(db_path: Path, sizes: list[int]) -> list[str]:
    """Write one conversation per size for the bench user, straight into the app's database."""
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    from sqlmodel import select

    from rubin_app.config import get_settings
    from rubin_app.models import Conversation, Message, MessageRole, MessageStatus, User
    from rubin_app.services.db import dispose_all, session_scope

    get_settings.cache_clear()

    async def main() -> list[str]:
        ids = []
        async with session_scope() as session:
            user = (await session.exec(select(User).where(User.email == BENCH_EMAIL))).one()
            for size in sizes:
                conv = Conversation(user_id=user.id, title=f"{size} messages", model="standin-model")
                session.add(conv)
                await session.flush()
                session.add_all(
                    Message(
                        conversation_id=conv.id,
                        user_id=user.id,
                        role=MessageRole.user if i % 2 == 0 else MessageRole.assistant,
                        content=text_of(i, last=i == size - 1),
                        status=MessageStatus.complete,
                    )
                    for i in range(size)
                )
                ids.append(conv.id)
        await dispose_all()
        return ids

    return asyncio.run(main())


def open_time(page: Page, base: str, cid: str) -> tuple[float, int]:
    """Fresh page load of a chat: ms from navigation start until its newest answer shows; WS bytes then."""
    page.goto(base + "/")  # same origin first, so the marker is in sessionStorage before the chat loads
    page.evaluate("() => sessionStorage.setItem('bench_marker', 'BENCH-LAST-ANSWER')")
    page.goto(f"{base}/c/{cid}")
    page.wait_for_function("() => window.__open.at !== null", timeout=120_000)
    page.wait_for_timeout(300)
    return float(page.evaluate("() => window.__open.at")), int(page.evaluate("() => window.__ws.bytes"))


def stream_deltas(page: Page, text: str) -> list[float]:
    """Send a message and return, per streamed websocket frame, ms until the page's text changed."""
    page.evaluate("() => { window.__delta.lat = []; window.__delta.pending = null; }")
    before = page.locator("[data-testid=assistant-message][data-status=complete]").count()
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=assistant-message][data-status=complete]').length > {before}"
        f" && ({DONE_JS})()",
        timeout=120_000,
    )
    return list(page.evaluate("() => window.__delta.lat"))


def load_all_pages(page: Page) -> list[float]:
    """Scroll up until every message is in; ms per older page (scroll to top -> more messages on the page)."""
    times = []
    while page.locator("[data-testid=loading-older]").count():
        ms = page.evaluate(
            """() => new Promise((done) => {
                const box = document.getElementById('rubin-scroll');
                const count = () => document.querySelectorAll('[data-testid=user-message]').length;
                const n = count(), t0 = performance.now();
                box.dispatchEvent(new WheelEvent('wheel', {bubbles: true}));
                box.scrollTop = 0;
                (function poll() {
                    if (count() > n) requestAnimationFrame(() => done(performance.now() - t0));
                    else if (performance.now() - t0 > 20000) done(-1);
                    else requestAnimationFrame(poll);
                })();
            })"""
        )
        if ms < 0:
            raise RuntimeError("an older page did not arrive")
        times.append(ms)
        page.wait_for_timeout(700)  # the view settles (history.js holds it in place for 600 ms)
    return times


def js_css_bytes(page: Page) -> tuple[int, int, int]:
    """Transferred (compressed) and decoded bytes of JS and CSS of the page load, and the file count."""
    entries = page.evaluate(
        """() => performance.getEntriesByType('resource')
              .filter(e => /\\.(m?js|css)(\\?|$)/.test(new URL(e.name).pathname))
              .map(e => [e.transferSize, e.decodedBodySize])"""
    )
    return sum(e[0] for e in entries), sum(e[1] for e in entries), len(entries)


def fmt(values: list[float]) -> str:
    return f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="page loads per chat for the open time")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to run (default: this one)")
    args = parser.parse_args()

    bench = launch(STREAM_RATE, "longchat-app.log", root=args.root)
    db_path, base = bench.db_path, bench.base
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        token = sign_in(base)
        long_id, short_id = seed(db_path, [LONG, SHORT])
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)

            def fresh_page() -> Page:
                context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
                context.add_cookies([session_cookie(base, token)])
                context.add_init_script(WS_PROBE)
                context.add_init_script(PROBE)
                return context.new_page()

            # (d) cold first load of the long chat: JS and CSS bytes.
            page = fresh_page()
            page.goto(f"{base}/c/{long_id}")
            page.get_by_test_id("composer").wait_for(timeout=60_000)
            page.wait_for_load_state("networkidle")
            sent, decoded, files = js_css_bytes(page)
            page.context.close()

            # (a) open times, alternating chats, warm cache (as a returning user).
            page = fresh_page()
            opened: dict[str, list[float]] = {long_id: [], short_id: []}
            ws_bytes: dict[str, int] = {}
            open_time(page, base, short_id)  # warm up
            for _ in range(args.runs):
                for cid in (long_id, short_id):
                    ms, n = open_time(page, base, cid)
                    opened[cid].append(ms)
                    ws_bytes[cid] = n
            long_ms, short_ms = opened[long_id], opened[short_id]
            rows.append((f"(a) open chat, ms p50 / max ({args.runs} loads)",
                         f"{percentile(long_ms, 50):.0f} / {max(long_ms):.0f} ({LONG} msgs)",
                         f"{percentile(short_ms, 50):.0f} / {max(short_ms):.0f} ({SHORT} msgs)",
                         f"+{percentile(long_ms, 50) - percentile(short_ms, 50):.0f} ms", "< 1500 ms"))  # fmt: skip
            rows.append(("(a) websocket bytes while opening", f"{ws_bytes[long_id]:,} ({LONG} msgs)",
                         f"{ws_bytes[short_id]:,} ({SHORT} msgs)",
                         f"x{ws_bytes[long_id] / max(1, ws_bytes[short_id]):.1f}", "-"))  # fmt: skip

            # (b) per-delta time: short chat, long chat as opened, long chat with everything scrolled in.
            probe = f"delta probe [[tokens={STREAM_TOKENS}]] [[rate={STREAM_RATE}]]"
            open_time(page, base, short_id)
            short_d = stream_deltas(page, probe)
            open_time(page, base, long_id)
            long_d = stream_deltas(page, probe)
            pages_ms = load_all_pages(page)
            shown = page.locator("[data-testid=user-message], [data-testid=assistant-message]").count()
            full_d = stream_deltas(page, probe)
            base50 = percentile(short_d, 50)
            rows.append((f"(b) per streamed delta, ms p50 / p95 ({len(long_d)} deltas)", f"{fmt(long_d)} ({LONG} msgs, as opened)",
                         f"{fmt(short_d)} ({SHORT} msgs)", f"x{percentile(long_d, 50) / base50:.2f}", "ratio <= 1.2"))  # fmt: skip
            rows.append((f"(b) per streamed delta, ms p50 / p95 ({len(full_d)} deltas)",
                         f"{fmt(full_d)} ({shown} msgs on the page)", f"{fmt(short_d)} ({SHORT} msgs)",
                         f"x{percentile(full_d, 50) / base50:.2f}", "ratio <= 1.2"))  # fmt: skip
            if pages_ms:
                rows.append((f"(c) bring in an older page, ms p50 / p95 ({len(pages_ms)} pages)", fmt(pages_ms),
                             "-", "-", "-"))  # fmt: skip
            rows.append(("(d) JS + CSS of the first load, bytes sent (decoded)", f"{sent:,} ({decoded:,})",
                         "-", f"{files} files", "-"))  # fmt: skip
            page.context.close()
            browser.close()
    finally:
        bench.close()

    where = "" if args.root == ROOT else f" — {args.root}"
    print_table(f"Long-chat benchmark — prod build, Chromium, stand-in at {STREAM_RATE} tokens/s{where}", rows)


if __name__ == "__main__":
    main()
