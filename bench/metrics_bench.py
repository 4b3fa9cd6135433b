"""Prometheus metrics (GET /metrics): what counting costs on an answer's path and on every request, and a scrape.

Each mode runs in a child process of its own, because prometheus-client picks its storage when it is imported:
"multiprocess" (what the production build uses: several workers, PROMETHEUS_MULTIPROC_DIR set, values in
memory-mapped files) and "single" (one process, values in memory). Measured in the same run:
  (a) a streamed event through the metrics sink vs a sink that does nothing (the baseline);
  (b) one answer counted (start, end, time to first token) vs nothing;
  (c) one HTTP request through the metrics ASGI layer vs the bare app (a trivial app, no network);
  (d) one scrape adding up the files of 3 workers that have counted 1,000 answers each.
Usage: scripts/bench.sh metrics  (or: .venv/bin/python -m bench.metrics_bench [--events 200000])
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import print_table  # noqa: E402


def _run(user_id: int = 1) -> Any:
    from rubin_app.generation.run import Run
    from rubin_app.llm.types import ChatMessage, ChatRequest
    from rubin_app.models import MessageStatus

    request = ChatRequest(model="bench-model", messages=[ChatMessage(role="user", content="hello")])
    run = Run(message_id=0, conversation_id="", user_id=user_id, request=request, source="ui")
    run.status, run.ttft_ms = MessageStatus.complete, 120
    return run


class _Nothing:
    def on_event(self, run: Any, event: Any) -> None:
        """The baseline sink."""

    async def on_finish(self, run: Any) -> None:
        """The baseline sink."""


def _per_call(fn: Any, count: int) -> float:
    """Seconds per call of `fn(i)` (best of 3)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(count):
            fn(i)
        best = min(best, (time.perf_counter() - start) / count)
    return best


def _finish(sink: Any, run: Any) -> None:
    """Drive `on_finish` to its end without an event loop (it awaits nothing here)."""
    coro = sink.on_finish(run)
    try:
        coro.send(None)
    except StopIteration:
        return
    raise AssertionError("on_finish waited for something")


def _sinks(events: int) -> dict[str, float]:
    from rubin_app.llm.types import Delta
    from rubin_app.observability.metrics import AnswerMetrics

    event = Delta("piece")
    results: dict[str, float] = {}
    for name, sink in (("metrics", AnswerMetrics()), ("nothing", _Nothing())):
        run = _run()
        sink.on_event(run, event)
        results[f"event_{name}"] = _per_call(lambda _i, s=sink, r=run: s.on_event(r, event), events)
        answers = max(1000, events // 20)
        runs = [_run() for _ in range(3 * answers)]  # made beforehand: only the counting is timed

        def answer(i: int, s: Any = sink, runs: list[Any] = runs) -> None:
            one = runs[i + answer.offset]  # type: ignore[attr-defined]
            s.on_event(one, event)
            _finish(s, one)

        best = float("inf")
        for attempt in range(3):
            answer.offset = attempt * answers  # type: ignore[attr-defined]
            start = time.perf_counter()
            for i in range(answers):
                answer(i)
            best = min(best, (time.perf_counter() - start) / answers)
        results[f"answer_{name}"] = best
    return results


def _asgi(requests: int) -> dict[str, float]:
    from rubin_app.observability.metrics import MetricsLayer

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(_message: Any) -> None:
        return None

    scope = {"type": "http", "method": "GET", "path": "/api/health", "headers": []}
    loop, results = asyncio.new_event_loop(), {}
    for name, served in (("metrics", MetricsLayer(app)), ("bare", app)):

        async def many(s: Any = served) -> None:
            for _ in range(requests):
                await s(scope, receive, send)

        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            loop.run_until_complete(many())
            best = min(best, (time.perf_counter() - start) / requests)
        results[f"http_{name}"] = best
    loop.close()
    return results


def _worker(answers: int) -> None:
    """A stand-in worker process: counts `answers` answers into the shared directory, then exits."""
    from rubin_app.llm.types import Delta
    from rubin_app.observability.metrics import AnswerMetrics

    sink = AnswerMetrics()
    for _ in range(answers):
        run = _run()
        sink.on_event(run, Delta("x"))
        _finish(sink, run)


def _scrape(answers: int) -> dict[str, float]:
    from rubin_app.observability import metrics

    workers = [multiprocessing.get_context("fork").Process(target=_worker, args=(answers,)) for _ in range(3)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join()
    start = time.perf_counter()
    for _ in range(20):
        body, _type = metrics.render()
    assert b"rubin_answers_ended_total" in body
    return {"scrape": (time.perf_counter() - start) / 20, "scrape_bytes": float(len(body))}


def child(mode: str, events: int) -> None:
    """Measure in this process (its storage chosen by the environment) and print JSON."""
    results = {**_sinks(events), **_asgi(max(2000, events // 20))}
    if mode == "multiprocess":
        results.update(_scrape(1000))
    print(json.dumps(results))


def measure(mode: str, events: int) -> dict[str, float]:
    """One child process's figures."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory(prefix="rubin-metrics-bench-") as folder:
        if mode == "multiprocess":
            env["PROMETHEUS_MULTIPROC_DIR"] = folder
        done = subprocess.run(
            [sys.executable, "-m", "bench.metrics_bench", "--child", mode, "--events", str(events)],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Both modes, then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--child", choices=["multiprocess", "single"])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.events)
        return
    rows = []
    for mode in ("multiprocess", "single"):
        r = measure(mode, args.events)
        ns, us = 1e9, 1e6
        rows += [
            (f"{mode}: a streamed event", f"{r['event_metrics'] * ns:.0f} ns", f"{r['event_nothing'] * ns:.0f} ns",
             f"+{(r['event_metrics'] - r['event_nothing']) * ns:.0f} ns", "< 1 µs"),
            (f"{mode}: one answer counted", f"{r['answer_metrics'] * us:.1f} µs", f"{r['answer_nothing'] * us:.1f} µs",
             f"+{(r['answer_metrics'] - r['answer_nothing']) * us:.1f} µs", "< 50 µs"),
            (f"{mode}: one HTTP request", f"{r['http_metrics'] * us:.1f} µs", f"{r['http_bare'] * us:.1f} µs",
             f"+{(r['http_metrics'] - r['http_bare']) * us:.1f} µs", "< 20 µs"),
        ]  # fmt: skip
        if "scrape" in r:
            rows.append((f"{mode}: a scrape of 3 workers x 1,000 answers", f"{r['scrape'] * 1000:.1f} ms",
                         "-", f"{r['scrape_bytes'] / 1024:.1f} KiB", "< 100 ms"))  # fmt: skip
    print_table("Prometheus metrics: cost on the answer's path, per request and per scrape", rows)


if __name__ == "__main__":
    main()
