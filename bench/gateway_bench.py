"""OpenAI-compatible gateway benchmark (issue #12): Rubin vs LiteLLM's proxy, side by side on this machine.

One LocalAI stand-in in its own process (answers at once, --tokens pieces), the same worker count for both
gateways, keys and rate limits on in both (bench/gateway_targets.py says exactly how), measured in one run:
  (a) non-streaming requests per second at fixed concurrency, one target at a time: the stand-in direct (the
      ceiling of this client and this stand-in on these cores), LiteLLM, Rubin passing through (every question
      new) and Rubin answering from its response cache (one question over and over, temperature 0);
  (b) latency at concurrency 1, non-streaming and streaming time to first token, p50/p95; "added" = target
      minus the stand-in direct in the same run, samples interleaved across targets (in shuffled order);
  (c) RSS of each gateway's process tree, idle and after the run.
Setup once: bench/setup_litellm.sh (LiteLLM in .tools/litellm-venv, never in .venv).
Usage: .venv/bin/python -m bench.gateway_bench [--targets direct,litellm,rubin] [--duration 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.gateway_report import print_report
from bench.gateway_targets import (
    LITELLM_VENV,
    MODEL,
    BenchError,
    Gateway,
    start_litellm,
    start_rubin,
    start_standin,
)
from bench.harness import ROOT, percentile

RESULTS = ROOT / "bench" / "results"
CACHED_TEXT = "gateway bench: the question asked over and over (a response cache answers it)"


def body(text: str, stream: bool = False) -> dict:
    """A chat completion request; temperature 0, so Rubin may cache it."""
    out = {"model": MODEL, "messages": [{"role": "user", "content": text}], "temperature": 0}
    return {**out, "stream": True} if stream else out


def headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


# ------------------------------------------------------------------------------------ (a) throughput


@dataclass
class Job:
    """What one client process sends, and when (wall-clock times shared by all client processes)."""

    url: str
    key: str | None
    concurrency: int
    start: float
    measure: float
    end: float
    same: bool
    tag: str
    client: str  # "raw": asyncio streams, HTTP/1.1 by hand; "httpx": httpx.AsyncClient


def run_job(job: Job) -> dict:
    """Entry point of a client process: `concurrency` loops sending requests back to back until `end`."""
    return asyncio.run(_run_job(job))


async def _run_job(job: Job) -> dict:
    ok, errors, lat, cpu = 0, Counter(), [], {}

    async def mark(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        cpu[name] = time.process_time()

    def record(status: str, t0: float) -> None:
        nonlocal ok
        if job.measure <= time.time() <= job.end:  # completions inside the window (steady state)
            if status == "200":
                ok += 1
                lat.append((time.perf_counter() - t0) * 1000)
            else:
                errors[status] += 1

    def text(w: int, i: int) -> str:
        return CACHED_TEXT if job.same else f"gateway bench {job.tag} {os.getpid()}-{w}-{i}"

    async def httpx_loop(client: httpx.AsyncClient, w: int) -> None:
        await asyncio.sleep(max(0.0, job.start - time.time()))
        i = 0
        while time.time() < job.end:
            i, t0 = i + 1, time.perf_counter()
            try:
                status = str((await client.post("/chat/completions", json=body(text(w, i)))).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            record(status, t0)

    async def raw_loop(w: int) -> None:
        url = httpx.URL(job.url)
        auth = f"Authorization: Bearer {job.key}\r\n" if job.key else ""
        head = (f"POST {url.path.rstrip('/')}/chat/completions HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
                f"Content-Type: application/json\r\nAccept: application/json\r\n{auth}Content-Length: ")  # fmt: skip
        await asyncio.sleep(max(0.0, job.start - time.time()))
        conn, i = None, 0
        while time.time() < job.end:
            i, t0 = i + 1, time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(url.host, url.port)
                data = json.dumps(body(text(w, i))).encode()
                conn[1].write(f"{head}{len(data)}\r\n\r\n".encode() + data)
                status, close = await read_response(conn[0])
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                status, close = type(exc).__name__, True
                await asyncio.sleep(0.01)  # a refused connection must not spin
            record(str(status), t0)
            if close and conn is not None:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    marks = [mark("measure", job.measure), mark("end", job.end)]
    if job.client == "raw":
        await asyncio.gather(*marks, *(raw_loop(w) for w in range(job.concurrency)))
    else:
        limits = httpx.Limits(max_connections=job.concurrency, max_keepalive_connections=job.concurrency)
        async with httpx.AsyncClient(base_url=job.url, headers=headers(job.key), limits=limits, timeout=30) as c:
            await asyncio.gather(*marks, *(httpx_loop(c, w) for w in range(job.concurrency)))
    return {"ok": ok, "errors": dict(errors), "lat": lat, "cpu": cpu["end"] - cpu["measure"]}


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response (Content-Length or chunked body); (status, whether the server closes)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    fields = {k.strip().lower(): v.strip().lower() for k, _, v in (h.partition(":") for h in head[1:] if h)}
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")  # no trailers
    else:
        await reader.read()  # body to end of connection
        return status, True
    return status, fields.get("connection") == "close"


def throughput(gw: Gateway, standin: Gateway, same: bool, args: argparse.Namespace, pool) -> dict:
    """Requests per second over `args.duration` s after `args.warmup` s, with CPU use of client and servers."""
    procs = args.client_procs
    start = time.time() + 1.0
    measure, end = start + args.warmup, start + args.warmup + args.duration
    shares = [args.concurrency // procs + (i < args.concurrency % procs) for i in range(procs)]
    tag = f"{gw.name}{'-cache' if same else ''}-{random.getrandbits(32):x}"
    futures = [
        pool.submit(run_job, Job(gw.url, gw.key, c, start, measure, end, same, tag, args.client)) for c in shares if c
    ]
    time.sleep(max(0.0, measure - time.time()))
    cpu0 = {"gateway": gw.cpu_seconds(), "stand-in": standin.cpu_seconds(), "machine": busy_seconds()}
    time.sleep(max(0.0, end - time.time()))
    cpu1 = {"gateway": gw.cpu_seconds(), "stand-in": standin.cpu_seconds(), "machine": busy_seconds()}
    results = [f.result() for f in futures]
    lat = sorted(x for r in results for x in r["lat"])
    errors = sum((Counter(r["errors"]) for r in results), Counter())
    cpu = {k: 100 * (cpu1[k] - cpu0[k]) / args.duration for k in cpu0}
    cpu["client"] = 100 * sum(r["cpu"] for r in results) / args.duration
    if gw is standin:
        cpu["gateway"] = 0.0
    # What the rest of the machine took meanwhile (other people's work on a shared box): all busy CPU but ours.
    cpu["others"] = max(0.0, cpu.pop("machine") - cpu["client"] - cpu["gateway"] - cpu["stand-in"])
    return {"rps": sum(r["ok"] for r in results) / args.duration, "errors": dict(errors), "cpu_pct": cpu,
            "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95)}  # fmt: skip


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores) since boot."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


# ------------------------------------------------------------------------------------ (b) latency


async def one_plain(client: httpx.AsyncClient, text: str) -> float:
    """Milliseconds for a whole non-streaming answer."""
    t0 = time.perf_counter()
    response = await client.post("/chat/completions", json=body(text))
    if response.status_code != 200:
        raise BenchError(f"{client.base_url} answered {response.status_code}: {response.text[:300]}")
    return (time.perf_counter() - t0) * 1000


async def one_ttft(client: httpx.AsyncClient, text: str) -> float:
    """Milliseconds to the first streamed content delta (the stream is then read to its end)."""
    t0, first = time.perf_counter(), None
    async with client.stream("POST", "/chat/completions", json=body(text, stream=True)) as response:
        if response.status_code != 200:
            raise BenchError(f"{client.base_url} answered {response.status_code} to a stream request")
        async for line in response.aiter_lines():
            if first is None and line.startswith("data:") and line[5:].strip() != "[DONE]":
                choices = json.loads(line[5:]).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    first = (time.perf_counter() - t0) * 1000
    if first is None:
        raise BenchError(f"{client.base_url} streamed no content")
    return first


async def latencies(scenarios: dict[str, tuple[Gateway, bool]], samples: int, warmup: int) -> dict:
    """Per scenario: non-streaming ms and TTFT ms, one sample of each scenario per round, in shuffled order."""
    out = {name: {"plain": [], "ttft": []} for name in scenarios}
    clients = {name: httpx.AsyncClient(base_url=gw.url, headers=headers(gw.key), timeout=30)
               for name, (gw, _) in scenarios.items()}  # fmt: skip
    try:
        for i in range(warmup + samples):
            for kind, fn in (("plain", one_plain), ("ttft", one_ttft)):
                order = list(scenarios)
                random.shuffle(order)
                for name in order:
                    same = scenarios[name][1]
                    text = f"{CACHED_TEXT} ({kind})" if same else f"gateway latency {kind} {i} {random.random()}"
                    ms = await fn(clients[name], text)
                    if i >= warmup:
                        out[name][kind].append(ms)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients.values()))
    return out


async def check(gw: Gateway) -> None:
    """One answer and one stream through the target, before any load: the right text comes back."""
    async with httpx.AsyncClient(base_url=gw.url, headers=headers(gw.key), timeout=30) as client:
        response = await client.post("/chat/completions", json=body("gateway check"))
        ok = response.status_code == 200 and response.headers.get("content-type", "").startswith("application/json")
        content = (response.json().get("choices") or [{}])[0].get("message", {}).get("content", "") if ok else ""
        if not content.startswith("Echo: gateway check"):
            raise BenchError(f"{gw.name} answered {response.status_code}: {response.text[:300]}")
        await one_ttft(client, "gateway stream check")


def limited_key_statuses(gw: Gateway) -> list[int]:
    """Four requests with the gateway's key limited to 2 a minute: it must refuse some (its limits are on)."""
    key = next(n.split("=", 1)[1] for n in gw.notes if n.startswith("limited_key="))
    with httpx.Client(base_url=gw.url, headers=headers(key), timeout=30) as client:
        return [client.post("/chat/completions", json=body(f"limit probe {i}")).status_code for i in range(4)]


# ------------------------------------------------------------------------------------ report


def versions() -> dict:
    out = {"python": sys.version.split()[0], "cores": os.cpu_count()}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out["litellm"] = subprocess.run(
            [str(LITELLM_VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()  # fmt: skip
        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="direct,litellm,rubin", help="comma-separated: direct,litellm,rubin")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per throughput target")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measurement")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight in the throughput runs")
    parser.add_argument("--client-procs", type=int, default=1, help="client processes sharing the concurrency")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="throughput client: HTTP/1.1 on asyncio streams (light) or httpx.AsyncClient")  # fmt: skip
    parser.add_argument("--samples", type=int, default=150, help="latency samples per target and kind")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="workers of each gateway")
    parser.add_argument("--tokens", type=int, default=20, help="pieces per stand-in answer")
    parser.add_argument("--no-litellm-redis", action="store_true", help="LiteLLM limits per worker (no Redis)")
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH",
                        help="also write the results as JSON (default path: bench/results/gateway-<time>.json)")  # fmt: skip
    args = parser.parse_args()
    targets = {t.strip() for t in args.targets.split(",") if t.strip()}
    if unknown := targets - {"direct", "litellm", "rubin"}:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    try:
        results = run(args, targets)
    except BenchError as exc:
        print(f"gateway bench: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print_report(results)
    if args.json is not None:
        path = Path(args.json) if args.json else RESULTS / f"gateway-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))
        print(f"\nresults written to {path}")


def run(args: argparse.Namespace, targets: set[str]) -> dict:
    """Start the targets, measure (a), (b), (c), stop everything; the stand-in direct is always measured."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    load_at_start = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="rubin-gateway-bench-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)  # runs last
        standin = start_standin(args.tokens, RESULTS / "gateway-standin.log")
        stack.callback(standin.stop)
        gateways: dict[str, Gateway] = {}
        if "rubin" in targets:  # first: it fails fast when its API is not there yet
            gateways["rubin"] = start_rubin(standin.url, args.workers, tmp / "rubin", RESULTS / "gateway-rubin.log")
            stack.callback(gateways["rubin"].stop)
        if "litellm" in targets:
            gateways["litellm"] = start_litellm(standin.url, args.workers, not args.no_litellm_redis, tmp / "litellm",
                                                RESULTS / "gateway-litellm.log")  # fmt: skip
            stack.callback(gateways["litellm"].stop)
        scenarios: dict[str, tuple[Gateway, bool]] = {"direct": (standin, False)}
        for name in ("litellm", "rubin"):
            if name in gateways:
                scenarios[name] = (gateways[name], False)
        if "rubin" in gateways:
            scenarios["rubin-cache"] = (gateways["rubin"], True)
        for gw in [standin, *gateways.values()]:
            asyncio.run(check(gw))
        time.sleep(1.0)
        rss_idle = {name: gw.rss_mb() for name, gw in gateways.items()}
        print(f"targets up: {', '.join(scenarios)}; throughput {args.duration:g} s each at concurrency "
              f"{args.concurrency} ({args.client_procs} client process(es))...", file=sys.stderr)  # fmt: skip
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.client_procs, mp_context=ctx) as pool:
            load = {name: throughput(gw, standin, same, args, pool) for name, (gw, same) in scenarios.items()}
        print(f"latency: {args.samples} samples per target, interleaved...", file=sys.stderr)
        lat = asyncio.run(latencies(scenarios, args.samples, warmup=10))
        limits = {name: limited_key_statuses(gw) for name, gw in gateways.items()}
        rss_after = {name: gw.rss_mb() for name, gw in gateways.items()}
        foreign = {name: gw.foreign_connections() for name, gw in gateways.items()}
    return {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "versions": versions(), "args": vars(args),
            "scenarios": list(scenarios), "throughput": load, "latency": lat, "rss_mb": {"idle": rss_idle,
            "after": rss_after}, "limit_probe": limits, "foreign_connections": foreign,
            "loadavg_at_start": load_at_start}  # fmt: skip


if __name__ == "__main__":
    main()
