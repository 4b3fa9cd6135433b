"""Long-chat benchmark: opening a 2,000-message chat, streaming into it, and the first load's JS/CSS bytes.

In one run, against the LocalAI stand-in, in Debian Chromium (browser clock throughout):
  (a) time to open a chat (navigation start -> its newest answer is on the page), 2,000-message chat
      vs 2-message chat, and the websocket bytes the opening brings;
  (b) time per streamed delta (websocket frame received -> the streamed text changed in the page) in the
      2,000-message chat — as opened, and again with all 2,000 messages scrolled in — vs a 2-message chat;
  (c) time to bring in one older page while scrolling up (scroll to the top -> its first messages show);
  (d) bytes of JavaScript and CSS the first page load transfers (cold cache);
  (e) scrolling up while three older pages arrive (fresh load of the 2,000-message chat): the longest
      frames (Long Animation Frames) and the total blocking time (long tasks: the time over 50 ms each).
Usage: scripts/bench.sh longchat [--runs N] [--root DIR] [--against DIR] [--parts abcde]
(or: python -m bench.longchat_bench). `--root` runs another checkout; `--against` runs another checkout (e.g. a
copy of the code before a change) first, then this one, and prints them side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
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
  // Long frames and long tasks, with their start times (the scroll-up phase picks its own window).
  window.__perf = {frames: [], tasks: []};
  const keep = (list, type) => {
    try {
      new PerformanceObserver((l) => { for (const e of l.getEntries()) list.push([e.startTime, e.duration]); })
        .observe({type, buffered: true});
    } catch (err) { /* not supported: the figure shows as "-" */ }
  };
  keep(window.__perf.frames, 'long-animation-frame');
  keep(window.__perf.tasks, 'longtask');
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


def seed(db_path: Path, sizes: list[int], root: Path = ROOT, data_dir: Path | None = None) -> list[str]:
    """Write one conversation per size for the bench user, straight into the app's database (sealed with the
    key of the app's DATA_DIR: `data_dir`, or the checkout's own, `root`/data)."""
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ["DATA_DIR"] = str(data_dir or root / "data")
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


SCROLL_UP_JS = """() => new Promise((done) => {
    const box = document.getElementById('rubin-scroll');
    const count = () => document.querySelectorAll('[data-testid=user-message]').length;
    const n = count(), t0 = performance.now();
    let first = -1, last = n, still = t0;
    box.dispatchEvent(new WheelEvent('wheel', {bubbles: true}));
    box.scrollTop = 0;
    (function poll() {
        const now = performance.now(), c = count();
        if (c !== last) { last = c; still = now; }
        if (c > n && first < 0) first = now - t0;
        if (first >= 0 && now - still > 400 && now - t0 > 900) done([first, n, c]);
        else if (now - t0 > 20000) done([-1, n, c]);
        else requestAnimationFrame(poll);
    })();
})"""


def load_all_pages(page: Page) -> list[float]:
    """Scroll up until every message is in; ms per older page (scroll to top -> its first messages show)."""
    times = []
    while page.locator("[data-testid=loading-older]").count():
        first, n, c = page.evaluate(SCROLL_UP_JS)
        if first < 0:
            raise RuntimeError(f"an older page did not arrive ({n} -> {c} questions)")
        times.append(first)
        page.wait_for_timeout(300)  # the view settles (history.js holds it in place for 600 ms)
    return times


def scroll_up(page: Page, pages: int) -> tuple[list[float], list[float], list[float]]:
    """Scroll to the top `pages` times, each time until an older page is in and the view is still.

    Returns ms until the first new messages showed per page, and the long frames and long tasks (ms)
    of the whole scroll-up (from the first scroll to the view's settling after the last page).
    """
    start = float(page.evaluate("() => performance.now()"))
    shown: list[float] = []
    for _ in range(pages):
        if not page.locator("[data-testid=loading-older]").count():
            break
        first, n, c = page.evaluate(SCROLL_UP_JS)
        if first < 0:
            raise RuntimeError(f"an older page did not arrive ({n} -> {c} questions)")
        shown.append(first)
        page.wait_for_timeout(300)
    frames = page.evaluate("(t) => window.__perf.frames.filter(f => f[0] >= t).map(f => f[1])", start)
    tasks = page.evaluate("(t) => window.__perf.tasks.filter(f => f[0] >= t).map(f => f[1])", start)
    return shown, list(frames), list(tasks)


def blocking(tasks: list[float]) -> float:
    """Total blocking time: the part of each long task over 50 ms."""
    return sum(max(0.0, t - 50) for t in tasks)


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


Row = tuple[str, str, str, str, str]


def part_d(fresh_page: Callable[[], Page], base: str, long_id: str) -> list[Row]:
    """(d) cold first load of the long chat: JS and CSS bytes."""
    page = fresh_page()
    page.goto(f"{base}/c/{long_id}")
    page.get_by_test_id("composer").wait_for(timeout=60_000)
    page.wait_for_load_state("networkidle")
    sent, decoded, files = js_css_bytes(page)
    page.context.close()
    return [
        ("(d) JS + CSS of the first load, bytes sent (decoded)", f"{sent:,} ({decoded:,})", "-", f"{files} files", "-")
    ]


def part_e(fresh_page: Callable[[], Page], base: str, long_id: str, runs: int) -> list[Row]:
    """(e) scrolling up a freshly opened long chat while three older pages arrive (`runs` fresh loads)."""
    worst: list[float] = []
    over: list[int] = []
    tbt: list[float] = []
    shown: list[float] = []
    cost: list[float] = []
    for _ in range(runs):
        page = fresh_page()
        open_time(page, base, long_id)
        page.wait_for_timeout(2500)  # the opening's own work (keeping to the bottom for 2 s) is over
        shown_ms, frames, tasks = scroll_up(page, 3)
        cost.append(
            float(page.evaluate("() => window.rubinHistory.cost ? window.rubinHistory.cost().perMessage : NaN"))
        )
        page.context.close()
        worst.append(max(frames, default=0.0))
        over.append(sum(f > 50 for f in frames))
        tbt.append(blocking(tasks))
        shown += shown_ms
    return [
        (f"(e) scroll up 3 older pages: longest frame, ms p50 / max ({runs} runs)",
         f"{percentile(worst, 50):.0f} / {max(worst):.0f}", "-", "-", "<= 50 ms"),
        ("(e) scroll up: frames over 50 ms per run, p50 / max", f"{percentile(over, 50):.0f} / {max(over)}",
         "-", "-", "0"),
        ("(e) scroll up: total blocking time, ms p50 / max", f"{percentile(tbt, 50):.0f} / {max(tbt):.0f}",
         "-", "-", "<= 30 ms"),
        ("(e) scroll up: first older messages shown, ms p50 / max",
         f"{percentile(shown, 50):.0f} / {max(shown, default=0):.0f}", "-", "-", "-"),
        ("(e) scroll up: drawing one message, ms (history.js estimate, p50)", f"{percentile(cost, 50):.1f}",
         "-", "-", "-"),
    ]  # fmt: skip


def part_a(page: Page, base: str, long_id: str, short_id: str, runs: int) -> list[Row]:
    """(a) open times, alternating chats, warm cache (as a returning user)."""
    opened: dict[str, list[float]] = {long_id: [], short_id: []}
    ws_bytes: dict[str, int] = {}
    open_time(page, base, short_id)  # warm up
    for _ in range(runs):
        for cid in (long_id, short_id):
            ms, n = open_time(page, base, cid)
            opened[cid].append(ms)
            ws_bytes[cid] = n
    long_ms, short_ms = opened[long_id], opened[short_id]
    return [
        (f"(a) open chat, ms p50 / max ({runs} loads)",
         f"{percentile(long_ms, 50):.0f} / {max(long_ms):.0f} ({LONG} msgs)",
         f"{percentile(short_ms, 50):.0f} / {max(short_ms):.0f} ({SHORT} msgs)",
         f"+{percentile(long_ms, 50) - percentile(short_ms, 50):.0f} ms", "<= 300 ms"),
        ("(a) websocket bytes while opening", f"{ws_bytes[long_id]:,} ({LONG} msgs)",
         f"{ws_bytes[short_id]:,} ({SHORT} msgs)", f"x{ws_bytes[long_id] / max(1, ws_bytes[short_id]):.1f}", "-"),
    ]  # fmt: skip


def part_bc(page: Page, base: str, long_id: str, short_id: str) -> list[Row]:
    """(b) per-delta time: short chat, long chat as opened, long chat with everything scrolled in; (c) pages."""
    probe = f"delta probe [[tokens={STREAM_TOKENS}]] [[rate={STREAM_RATE}]]"
    open_time(page, base, short_id)
    short_d = stream_deltas(page, probe)
    open_time(page, base, long_id)
    long_d = stream_deltas(page, probe)
    pages_ms = load_all_pages(page)
    shown = page.locator("[data-testid=user-message], [data-testid=assistant-message]").count()
    full_d = stream_deltas(page, probe)
    base50 = percentile(short_d, 50)
    rows: list[Row] = [
        (f"(b) per streamed delta, ms p50 / p95 ({len(long_d)} deltas)", f"{fmt(long_d)} ({LONG} msgs, as opened)",
         f"{fmt(short_d)} ({SHORT} msgs)", f"x{percentile(long_d, 50) / base50:.2f}", "ratio <= 1.2"),
        (f"(b) per streamed delta, ms p50 / p95 ({len(full_d)} deltas)",
         f"{fmt(full_d)} ({shown} msgs on the page)", f"{fmt(short_d)} ({SHORT} msgs)",
         f"x{percentile(full_d, 50) / base50:.2f}", "ratio <= 1.2"),
    ]  # fmt: skip
    if pages_ms:
        rows.append((f"(c) bring in an older page, ms p50 / p95 ({len(pages_ms)} pages)", fmt(pages_ms), "-", "-", "-"))
    return rows


def run(root: Path, parts: str, runs: int) -> list[Row]:
    """Start the app of the checkout `root` on a fresh database, seed the chats and measure `parts`."""
    bench = launch(STREAM_RATE, "longchat-app.log", root=root)
    load = os.getloadavg()[0]
    rows: list[Row] = []
    try:
        token = sign_in(bench.base)
        # A process of its own: the app's settings and keys are cached per process, and each checkout has its own.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            long_id, short_id = pool.submit(seed, bench.db_path, [LONG, SHORT], root).result()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)

            def fresh_page() -> Page:
                context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
                context.add_cookies([session_cookie(bench.base, token)])
                context.add_init_script(WS_PROBE)
                context.add_init_script(PROBE)
                return context.new_page()

            if "d" in parts:
                rows += part_d(fresh_page, bench.base, long_id)
            if "e" in parts:
                rows += part_e(fresh_page, bench.base, long_id, max(1, runs // 2))
            page = fresh_page()
            if "a" in parts:
                rows += part_a(page, bench.base, long_id, short_id, runs)
            if "b" in parts or "c" in parts:
                rows += part_bc(page, bench.base, long_id, short_id)
            page.context.close()
            browser.close()
    finally:
        bench.close()
    # Figures move with the machine's load (other work on the same cores): say what it was.
    rows.append(("load average (1 min) at the start / end", f"{load:.1f} / {os.getloadavg()[0]:.1f}", "-", "-", "-"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="page loads per chat for the open time")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to run (default: this one)")
    parser.add_argument("--against", type=Path, help="another checkout (e.g. the code before a change), run first")
    parser.add_argument("--parts", default="abcde", help="which parts to run, e.g. 'ae' (b and c run together)")
    args = parser.parse_args()

    title = f"Long-chat benchmark — prod build, Chromium, stand-in at {STREAM_RATE} tokens/s"
    before = run(args.against, args.parts, args.runs) if args.against else []
    rows = run(args.root, args.parts, args.runs)
    print_table(title + ("" if args.root == ROOT else f" — {args.root}"), rows)
    if before:
        print_table(f"{title} — {args.against}", before)
        side = [
            (r[0], r[1], b[1], "-", r[4])
            for r, b in zip(rows, before, strict=False)
            if r[0].split(" (")[0] == b[0].split(" (")[0]
        ]
        print_table(f"Side by side: this checkout (Rubin) vs {args.against} (baseline)", side)


if __name__ == "__main__":
    main()
