"""Redis benchmark (issue #4): per-request cost of the cache lookup + rate-limit check, a cache hit's
time to first token vs a miss's, and concurrent streams held by several workers sharing Redis.

Everything in one run, against a real redis-server and the LocalAI stand-in:
  (d) cache lookup + rate-limit check per chat request, p50/p95, real Redis vs the in-process fallback;
  (e) time to first token of a cache hit vs a miss (headless tab: send -> first streamed text);
  (f) N simultaneous streams (default 200) on W workers (default 4) with Redis: streams stalled over
      1 s, answers saved complete; RSS of the whole stack (app processes + redis-server) idle vs loaded.
Usage: scripts/bench.sh redis  (or: .venv/bin/python -m bench.redis_bench [--streams 200 --workers 4])
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sqlite3
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from bench.cluster_services import StandInProcess
from bench.harness import (
    ROOT,
    app_env,
    backend_rss_mb,
    free_port,
    percentile,
    print_table,
    sign_in,
    start_app,
    stop_app,
)
from bench.ws_client import Tab
from tests.fakes.redis_server import RedisServer

STALL_S = 1.0


def lookup_cost(redis_url: str | None, runs: int) -> list[float]:
    """Milliseconds per (cache lookup + rate-limit check), as chat_flow does them per request."""
    from rubin_app.llm.types import ChatRequest, Params
    from rubin_app.services.cache import ResponseCache
    from rubin_app.services.limits import Limiter, Limits
    from rubin_app.services.redis_store import RedisStore

    async def main() -> list[float]:
        store = RedisStore(redis_url) if redis_url else None
        cache, limiter = ResponseCache(store), Limiter(store)
        limits = Limits(requests_per_minute=10**9, ip_requests_per_minute=10**9, tokens_per_day=10**12)
        messages = [{"role": "system", "content": "You are Rubin."}, {"role": "user", "content": "Hello " * 50}]
        out = []
        for i in range(runs + 50):
            t0 = time.perf_counter()
            await cache.get(
                ChatRequest.of_turns("standin-model", messages, Params(temperature=0, seed=i % 7)).cache_key()
            )
            ticket = await limiter.check_request(user_id=1, ip="127.0.0.1", limits=limits, estimate=3000)
            if i >= 50:  # warm-up: pool connections, script cache
                out.append((time.perf_counter() - t0) * 1000)
            await limiter.settle_tokens(ticket, 120)  # the answer ended (as every request's does), untimed
        if store is not None:
            await store.close()
        return out

    return asyncio.run(main())


def stack_rss_mb(app, redis: RedisServer) -> float:
    """RSS of the app's process tree plus redis-server."""
    total = backend_rss_mb(app)
    if redis.proc is not None:
        total += psutil.Process(redis.proc.pid).memory_info().rss / 1e6
    return total


async def first_piece_ms(base: str, cookie: str, text: str) -> float:
    """Send in a fresh headless tab; ms until the first streamed text arrives."""
    tab = Tab(base, cookie)
    await tab.open("/")
    await asyncio.sleep(0.3)
    t0 = await tab.send(text)
    await tab.wait_done(60)
    await tab.close()
    return (tab.pieces[0][0] - t0) * 1000 if tab.pieces else float("nan")


async def many_streams(
    base: str, cookies: list[str], streams: int, tokens: int, rate: float, ramp: float, app, redis
) -> dict:
    """N tabs stream at once; max gap between pieces per tab, answers done, peak stack RSS."""
    tabs = [Tab(base, cookies[i % len(cookies)]) for i in range(streams)]
    for i in range(0, streams, 25):
        await asyncio.gather(*(t.open("/") for t in tabs[i : i + 25]))
    await asyncio.sleep(1.0)
    peak, running = [0.0], [True]

    async def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], stack_rss_mb(app, redis))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()

    async def send(i: int, tab: Tab) -> float:  # users press Enter over `ramp` seconds, not in one instant
        await asyncio.sleep(ramp * i / streams)
        return await tab.send(f"load {i} [[tokens={tokens}]] [[rate={rate}]]")

    sent = await asyncio.gather(*(send(i, t) for i, t in enumerate(tabs)))
    done = await asyncio.gather(*(t.wait_done(300) for t in tabs))
    elapsed = time.perf_counter() - t0
    running[0] = False
    await sampler
    # Per tab: the wait from its send to the first text, and the longest gap between pieces after that
    # (a stall mid-answer). A tab that got no text at all stalled for the whole run.
    gaps, first, empty = [], [], 0
    for tab, s in zip(tabs, sent, strict=True):
        times = [t for t, _ in tab.pieces]
        if not times:
            empty += 1
            gaps.append(elapsed)
            continue
        first.append(times[0] - s)
        gaps.append(max((b - a for a, b in itertools.pairwise(times)), default=0.0))
    await asyncio.gather(*(t.close() for t in tabs))
    return {"done": sum(done), "stalled": sum(g > STALL_S for g in gaps), "max_gap": max(gaps), "peak": peak[0],
            "elapsed": elapsed, "empty": empty, "first_p50": percentile(first, 50) if first else float("nan"),
            "first_p95": percentile(first, 95) if first else float("nan"), "first_max": max(first, default=float("nan"))}  # fmt: skip


def saved_complete(db_path: Path, prefix: str) -> int:
    """Complete answers in the chats whose first message (the title) starts with `prefix`."""
    with sqlite3.connect(db_path) as db:
        return int(db.execute(
            "SELECT count(*) FROM messages a JOIN conversations c ON c.id = a.conversation_id "
            "WHERE a.role = 'assistant' AND a.status = 'complete' AND c.title LIKE ?", (prefix + "%",),
        ).fetchone()[0])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000, help="samples for the lookup cost")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=100, help="tokens per answer in the load test")
    parser.add_argument("--rate", type=float, default=20.0, help="stand-in tokens/s per answer")
    parser.add_argument("--ramp", type=float, default=1.0, help="the N messages are sent over this many seconds")
    args = parser.parse_args()

    redis = RedisServer().start()
    standin = StandInProcess(
        rate=200
    ).start()  # its own process, as LocalAI is: it must not share a GIL with the 200 clients
    tmp = Path(tempfile.mkdtemp(prefix="rubin-redis-bench-"))
    rows: list[tuple[str, str, str, str, str]] = []
    app = None
    try:
        with_redis, local = lookup_cost(redis.url, args.runs), lookup_cost(None, args.runs)
        for q in (50, 95):
            rows.append((f"(d) cache lookup + rate limit, ms p{q}", f"{percentile(with_redis, q):.3f} (Redis)",
                         f"{percentile(local, q):.3f} (in-process)", f"x{percentile(with_redis, q) / max(percentile(local, q), 1e-6):.1f}",
                         "p50 < 1 ms" if q == 50 else "-"))  # fmt: skip

        port = free_port()
        env = app_env(
            standin.url, tmp / "bench.db", port, DATA_DIR=str(tmp), REDIS_URL=redis.url, WORKERS=str(args.workers),
            LLM_TEMPERATURE="0", RATE_LIMIT_RPM="0", RATE_LIMIT_IP_RPM="0", MAX_CONCURRENT_ANSWERS="0",
        )  # fmt: skip  # the default TITLE_MODE=llm: every new chat also asks for its title
        os.environ.pop("GRANIAN_WORKERS", None)
        (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
        app = start_app(env, ROOT / "bench" / "results" / "redis-app.log")
        base = f"http://127.0.0.1:{port}"
        cookie = sign_in(base)
        time.sleep(2)
        idle = stack_rss_mb(app, redis)

        misses, hits = [], []
        for i in range(10):
            text = f"cache probe {i}: what is Redis? [[tokens=40]] [[ttft=0.2]]"
            misses.append(asyncio.run(first_piece_ms(base, cookie, text)))
            hits.append(asyncio.run(first_piece_ms(base, cookie, text)))
        rows.append(("(e) TTFT p50, ms, cache hit vs miss", f"{percentile(hits, 50):.1f} (hit)",
                     f"{percentile(misses, 50):.1f} (miss, stand-in TTFT 200 ms)",
                     f"x{percentile(hits, 50) / percentile(misses, 50):.2f}", "hit << miss"))  # fmt: skip

        # One user per stream, as in real use: each has their own chat list and limits.
        with ThreadPoolExecutor(8) as pool:
            cookies = list(
                pool.map(lambda i: sign_in(base, f"load{i}@example.com", name=f"Load {i}"), range(args.streams))
            )
        load = asyncio.run(many_streams(base, cookies, args.streams, args.tokens, args.rate, args.ramp, app, redis))
        saved = saved_complete(tmp / "bench.db", "load ")
        rows.append((f"(f) {args.streams} streams on {args.workers} workers + Redis",
                     f"{load['done']} finished, {saved} saved, {load['stalled']} stalled > 1 s mid-answer",
                     f"{args.streams} expected (sent over {args.ramp:g} s)",
                     f"longest gap {load['max_gap']:.2f} s; first text p50 {load['first_p50']:.2f} s, "
                     f"p95 {load['first_p95']:.2f} s, max {load['first_max']:.2f} s; {load['empty']} without text; "
                     f"{load['elapsed']:.1f} s in all",
                     "0 stalled, all saved"))  # fmt: skip
        rows.append(("(f) RSS of the whole stack, MB", f"{load['peak']:.0f} (at load)", f"{idle:.0f} (idle)",
                     f"x{load['peak'] / idle:.2f}", "-"))  # fmt: skip
    finally:
        if app is not None:
            stop_app(app)
        standin.stop()
        redis.close()
    print_table(
        f"Redis benchmark — real redis-server, stand-in at {args.rate:.0f} tokens/s per answer, "
        f"{args.workers} workers, headless websocket clients", rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
