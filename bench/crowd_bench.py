"""20 clients sending at once, on the server alone (issue #16, figure 6 without the browsers).

The peers bench (figure 6) drives 20 Chromium pages on the same 2 cores as the servers, so its first-piece times are
mostly the browsers' own drawing. This one puts the same crowd on Rubin's production app with headless tabs
(bench/ws_client.py: the websocket and the page's stream operations, nothing drawn): one user, 20 tabs, each in a
chat of its own (one warm-up answer first), all pressing Send on one cue. The LocalAI stand-in runs in a process of
its own (as LocalAI does), at 200 pieces/s.

Baselines in the same run: the same 20 requests sent at once straight to the stand-in with httpx (what any client
of this LocalAI waits, Rubin's own part is the difference), and one answer alone through Rubin on the same tabs.

    scripts/bench.sh crowd [--clients 20] [--pieces 300] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.cluster_services import StandInProcess
from bench.harness import BENCH_EMAIL, ROOT, app_env, free_port, percentile, print_table, sign_in, start_app, stop_app
from bench.ws_client import Tab

RATE = 200.0  # pieces per second, as the peers bench's stand-in


async def _one(tab: Tab, text: str) -> tuple[float, float]:
    """(ms to the first piece, s to done) of one answer in this tab."""
    t0 = await tab.send(text)
    if not await tab.wait_done(120):
        raise RuntimeError("an answer did not end in 120 s")
    first = (tab.pieces[0][0] - t0) * 1000 if tab.pieces else float("nan")
    return first, time.perf_counter() - t0


async def _direct(client: httpx.AsyncClient, text: str) -> tuple[float, float]:
    """(ms to the first content piece, s to the end) of one streamed request straight to the stand-in."""
    body = {"model": "standin-model", "stream": True, "messages": [{"role": "user", "content": text}]}
    t0, first = time.perf_counter(), float("nan")
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if first != first and '"content":"' in line and '"content":""' not in line:
                first = (time.perf_counter() - t0) * 1000
    return first, time.perf_counter() - t0


async def crowd(base: str, cookie: str, standin: str, clients: int, pieces: int, runs: int) -> dict[str, list[float]]:
    """Per run: one answer alone, the crowd straight to the stand-in, the crowd through Rubin."""
    tabs = [Tab(base, cookie) for _ in range(clients)]
    await asyncio.gather(*(t.open("/") for t in tabs))
    await asyncio.sleep(1.0)
    await asyncio.gather(*(_one(t, f"warm-up {i} [[tokens=5]]") for i, t in enumerate(tabs)))  # a chat each
    out: dict[str, list[float]] = {k: [] for k in ("alone_first", "alone_s", "first", "ratio", "direct", "d_ratio")}
    limits = httpx.Limits(max_connections=clients * 2)
    async with httpx.AsyncClient(base_url=standin, limits=limits, timeout=120) as client:
        await asyncio.gather(*(_direct(client, f"warm {i} [[tokens=2]]") for i in range(clients)))
        for run in range(runs):
            await asyncio.sleep(1.0)
            alone_first, alone_s = await _one(tabs[0], f"alone {run} [[tokens={pieces}]]")
            await asyncio.sleep(1.0)
            cue = time.perf_counter()
            direct = await asyncio.gather(
                *(_direct(client, f"d {run} {i} [[tokens={pieces}]]") for i in range(clients))
            )
            direct_s = time.perf_counter() - cue
            await asyncio.sleep(1.0)
            cue = time.perf_counter()
            done = await asyncio.gather(*(_one(t, f"crowd {run} {i} [[tokens={pieces}]]") for i, t in enumerate(tabs)))
            last = time.perf_counter() - cue
            out["alone_first"].append(alone_first)
            out["alone_s"].append(alone_s)
            out["first"] += [first for first, _ in done]
            out["direct"] += [first for first, _ in direct]
            out["ratio"].append(last / alone_s)
            out["d_ratio"].append(direct_s / alone_s)
    await asyncio.gather(*(t.close() for t in tabs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--pieces", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    standin = StandInProcess(rate=RATE, tokens=20).start()
    tmp = Path(tempfile.mkdtemp(prefix="rubin-crowd-"))
    port = free_port()
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    try:
        app = start_app(app_env(standin.url, tmp / "bench.db", port), ROOT / "bench" / "results" / "crowd_bench.log")
        try:
            base = f"http://127.0.0.1:{port}"
            res = asyncio.run(
                crowd(base, sign_in(base, BENCH_EMAIL), standin.url, args.clients, args.pieces, args.runs)
            )
        finally:
            stop_app(app)
    finally:
        standin.stop()
    p50, direct50 = percentile(res["first"], 50), percentile(res["direct"], 50)
    alone = statistics.median(res["alone_first"])
    rows = [
        ("first piece p50, ms (vs the crowd straight to the stand-in)", f"{p50:.0f}", f"{direct50:.0f}",
         f"+{p50 - direct50:.0f} ms", "<= 50 ms"),
        ("first piece p95, ms", f"{percentile(res['first'], 95):.0f}", f"{percentile(res['direct'], 95):.0f}",
         "", ""),
        ("first piece of one answer alone, ms (median)", f"{alone:.0f}", "", f"crowd {p50 / alone:.1f}x", ""),
        ("all done / one answer alone (median of runs)", f"{statistics.median(res['ratio']):.2f}x",
         f"{statistics.median(res['d_ratio']):.2f}x", "", "<= 1.1x"),
        ("one answer alone, s (median)", f"{statistics.median(res['alone_s']):.2f}", "", "", ""),
    ]  # fmt: skip
    print_table(
        f"{args.clients} headless clients sending at once, {args.pieces}-piece answers at {RATE:.0f}/s, "
        f"{args.runs} runs (load {os.getloadavg()[0]:.1f}); baseline: the same crowd straight to the stand-in",
        rows,
    )


if __name__ == "__main__":
    main()
