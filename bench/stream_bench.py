"""Streaming benchmark: time to first token, websocket bytes per answer, backend memory.

Everything runs against the LocalAI stand-in at a fixed token rate, in one run:
  (a) time to first token through Rubin vs calling the stand-in directly with httpx, p50 and p95:
      for a headless websocket client (Rubin's own pipeline, as the httpx baseline has no drawing
      either) and, user-visible, in Chromium (its clock: websocket send -> first frame with text,
      which also waits for the browser to draw the sent message);
  (b) websocket bytes received for a 500-token answer in an empty chat vs in a chat of
      200 earlier messages;
  (c) backend RSS at idle and during 20 concurrent streams.
Usage: scripts/bench.sh  (or: .venv/bin/python bench/stream_bench.py [--quick])
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from bench.harness import (
    BENCH_EMAIL,
    CHROMIUM_ARGS,
    WS_PROBE,
    backend_rss_mb,
    launch,
    percentile,
    print_table,
    session_cookie,
    sign_in,
)
from bench.ws_client import Tab

TOKEN_RATE = 200.0  # pieces per second from the stand-in
TTFTS = (0.0, 0.05)  # the stand-in's own time to first token: instant, and a fast real model
DONE_JS = (
    "() => !document.querySelector('[data-testid=stop]') && !document.querySelector('[data-testid=streaming-answer]')"
)


def direct_ttft(url: str, runs: int) -> list[float]:
    """Milliseconds from request to first content delta, straight to the stand-in."""

    async def one(client: httpx.AsyncClient, i: int) -> float:
        body = {
            "model": "standin-model",
            "stream": True,
            "messages": [{"role": "user", "content": f"direct {i} [[tokens=5]]"}],
        }
        t0 = time.perf_counter()
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    return (time.perf_counter() - t0) * 1000
        raise RuntimeError("no content")

    async def main() -> list[float]:
        async with httpx.AsyncClient(base_url=url) as client:
            await one(client, -1)  # warm the connection pool, as Rubin's client is warm
            return [await one(client, i) for i in range(runs)]

    return asyncio.run(main())


def headless_ttft(base: str, token: str, runs: int) -> list[float]:
    """Ms from sending a message to the first streamed text, for a headless websocket client (bench/ws_client.py):
    Rubin's own pipeline (event in, database, request to LocalAI, first piece out), no browser drawing."""

    async def main() -> list[float]:
        tab = Tab(base, token)
        await tab.open("/")
        await asyncio.sleep(0.5)
        out = []
        for i in range(runs + 1):  # the first one opens the chat (warm-up)
            t0 = await tab.send(f"headless probe {i} [[tokens=5]]")
            if not await tab.wait_done(60) or not tab.pieces:
                raise RuntimeError("no answer")
            if i:
                out.append((tab.pieces[0][0] - t0) * 1000)
            await asyncio.sleep(0.05)
        await tab.close()
        return out

    return asyncio.run(main())


def open_chat(page: Page, base: str, path: str = "/") -> None:
    """Open a page and wait until the app is connected and idle."""
    page.goto(base + path)
    page.get_by_test_id("composer").wait_for(timeout=60_000)
    page.wait_for_function("() => window.__ws && window.__ws.recv.length > 0", timeout=30_000)
    page.wait_for_timeout(300)


def send_and_wait(page: Page, text: str, timeout: float = 120_000) -> None:
    """Type, send with Enter, wait for the answer to be finished and shown."""
    before = page.locator("[data-testid=assistant-message][data-status=complete]").count()
    page.evaluate("() => { window.__ws.sent = []; window.__ws.recv = []; window.__ws.bytes = 0; }")
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=assistant-message][data-status=complete]').length > {before}"
        f" && ({DONE_JS})()",
        timeout=timeout,
    )


def rubin_ttft(page: Page, runs: int) -> list[float]:
    """Browser-clock ms from the websocket send of the message to the first streamed text."""
    out = []
    for i in range(runs):
        send_and_wait(page, f"probe {i} [[tokens=5]]")
        out.append(
            page.evaluate(
                "() => { const s = window.__ws.sent.find(x => x.send); const r = window.__ws.recv.find(x => x.stream && x.t > s.t);"
                " return r.t - s.t; }"
            )
        )
    return out


def seed_long_chat(db_path: Path, messages: int) -> str:
    """Write a conversation of `messages` earlier messages straight into the app's database."""
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    from sqlmodel import select

    from rubin_app.config import get_settings
    from rubin_app.models import MessageRole, User
    from rubin_app.services import chats
    from rubin_app.services.db import dispose_all, session_scope

    get_settings.cache_clear()

    async def main() -> str:
        async with session_scope() as session:
            user = (await session.exec(select(User).where(User.email == BENCH_EMAIL))).one()
            conv = await chats.create_conversation(
                session=session, user_id=user.id, model="standin-model", title="long chat"
            )
            for i in range(messages):
                role = MessageRole.user if i % 2 == 0 else MessageRole.assistant
                text = f"Earlier message {i}: " + "lorem ipsum dolor sit amet " * 20
                await chats.create_message(
                    session=session, user_id=user.id, conversation_id=conv.id, role=role, content=text
                )
        await dispose_all()
        return conv.id

    return asyncio.run(main())


def answer_bytes(page: Page, text: str) -> int:
    """Websocket bytes received while one answer streams and is finalised."""
    send_and_wait(page, text)
    page.wait_for_timeout(500)
    return int(page.evaluate("() => window.__ws.bytes"))


def concurrent_rss(browser, base: str, app, streams: int, token: str) -> tuple[float, int, float]:
    """Peak backend RSS while `streams` browser tabs stream at once; returns (peak MB, answers done, seconds)."""
    context = browser.new_context()
    context.add_cookies([session_cookie(base, token)])
    context.add_init_script(WS_PROBE)
    pages = [context.new_page() for _ in range(streams)]
    for page in pages:
        open_chat(page, base)
    peak, stop = [0.0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], backend_rss_mb(app))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    for i, page in enumerate(pages):
        page.get_by_test_id("composer").fill(f"concurrent {i} [[tokens=300]] [[rate=40]]")
        page.get_by_test_id("composer").press("Enter")
    done = 0
    for page in pages:
        page.wait_for_function(
            f"() => document.querySelectorAll('[data-testid=assistant-message][data-status=complete]').length > 0 && ({DONE_JS})()",
            timeout=180_000,
        )
        done += 1
    elapsed = time.perf_counter() - t0
    stop.set()
    sampler.join()
    context.close()
    return peak[0], done, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40, help="answers per time-to-first-token sample")
    parser.add_argument("--streams", type=int, default=20, help="concurrent streams for the memory figure")
    args = parser.parse_args()

    bench = launch(TOKEN_RATE, "app.log")
    standin, app, db_path, base = bench.standin, bench.app, bench.db_path, bench.base
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        token = sign_in(base)
        long_id = seed_long_chat(db_path, 200)
        direct, headless = {}, {}
        for ttft in TTFTS:
            standin.config.ttft = ttft
            direct[ttft] = direct_ttft(standin.url, args.runs)
            headless[ttft] = headless_ttft(base, token, args.runs)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            context = browser.new_context()
            context.add_cookies([session_cookie(base, token)])
            context.add_init_script(WS_PROBE)
            page = context.new_page()
            open_chat(page, base)
            send_and_wait(page, "warm up [[tokens=5]]")

            for ttft in TTFTS:
                standin.config.ttft = ttft
                through = rubin_ttft(page, args.runs)
                d = direct[ttft]
                label = f"stand-in TTFT {ttft * 1000:.0f} ms"
                for client, values in (("websocket client", headless[ttft]), ("Chromium, user-visible", through)):
                    for q in (50, 95):
                        rows.append((f"(a) TTFT p{q}, ms ({label}; {client})", f"{percentile(values, q):.1f}",
                                     f"{percentile(d, q):.1f}", f"+{percentile(values, q) - percentile(d, q):.1f} ms",
                                     "added <= 15 ms" if q == 50 else "-"))  # fmt: skip
            standin.config.ttft = 0.0

            open_chat(page, base)
            empty = answer_bytes(page, "bytes probe [[tokens=500]]")
            open_chat(page, base, f"/c/{long_id}")
            long = answer_bytes(page, "bytes probe [[tokens=500]]")
            rows.append(("(b) WS bytes, 500-token answer", f"{long:,} (200-msg chat)", f"{empty:,} (empty chat)",
                         f"x{long / empty:.2f}", "ratio <= 1.2"))  # fmt: skip
            context.close()

            idle = statistics.mean(backend_rss_mb(app) for _ in range(5))
            peak, done, secs = concurrent_rss(browser, base, app, args.streams, token)
            rows.append(("(c) backend RSS, MB", f"{peak:.0f} ({args.streams} streams, {done} done in {secs:.1f} s)",
                         f"{idle:.0f} (idle)", f"x{peak / idle:.2f}", "-"))  # fmt: skip
            browser.close()
    finally:
        bench.close()

    print_table(f"Streaming benchmark — stand-in at {TOKEN_RATE:.0f} tokens/s, prod build, Chromium", rows)


if __name__ == "__main__":
    main()
