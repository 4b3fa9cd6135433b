"""Prometheus metrics: answers started and ended, time to first token, answers streaming now, open websockets,
HTTP responses by class, and whether Redis and LocalAI are usable (docs/deployment.md, "Metrics").

The figures are correct across the workers of an instance: with `PROMETHEUS_MULTIPROC_DIR` set (rxconfig.py
sets it through `multiprocess.prepare`), each worker writes its own files and `render()` adds them up;
without it (one process: tests, dev mode) the default registry is read.
"""

from __future__ import annotations

import functools
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client import values as prom_values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rubin_app.generation.run import Run
from rubin_app.llm.types import StreamEvent
from rubin_app.observability.multiprocess import ENV, reap_dead_workers

ANSWERS_STARTED = Counter(
    "rubin_answers_started", "Answers begun, by who asked (ui, api, rest; recovery: one continued)", ["source"]
)
ANSWERS_ENDED = Counter(
    "rubin_answers_ended",
    "Answers ended, by who asked, final status (complete, interrupted, error) and reason (empty, stopped, "
    "shutdown, save_failed, an error code).",
    ["source", "status", "reason"],
)
ANSWERS_STREAMING = Gauge(
    "rubin_answers_streaming", "Answers being generated now (begun, not ended).", multiprocess_mode="livesum"
)
TIME_TO_FIRST_TOKEN = Histogram(
    "rubin_time_to_first_token_seconds",
    "Seconds from asking LocalAI (or the response cache) to the first piece of text.",
    ["cached"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
WEBSOCKETS = Gauge("rubin_websocket_connections", "Open websocket connections (tabs).", multiprocess_mode="livesum")
HTTP_RESPONSES = Counter("rubin_http_responses", "HTTP responses, by status class (2xx, 3xx, 4xx, 5xx).", ["code"])
REDIS_DEGRADED = Gauge(
    "rubin_redis_degraded",
    "1 while Redis is configured but unreachable (in-process fallbacks in use), else 0; as of the last scrape.",
    multiprocess_mode="mostrecent",
)
LOCALAI_UP = Gauge(
    "rubin_localai_up", "1 when LocalAI answered its model list, else 0; as of the last scrape.",
    multiprocess_mode="mostrecent",
)  # fmt: skip


# Labelled children looked up once per label set (`labels()` costs microseconds; the sets are small and bounded).
_started = functools.cache(ANSWERS_STARTED.labels)
_ended = functools.cache(ANSWERS_ENDED.labels)
_first_token = functools.cache(TIME_TO_FIRST_TOKEN.labels)
_responses = functools.cache(HTTP_RESPONSES.labels)


class AnswerMetrics:
    """Sink: counts every run's start (its first event, or its end if it had none), end and time to first token."""

    def __init__(self) -> None:
        self._live: set[Run] = set()

    def _begin(self, run: Run) -> None:
        self._live.add(run)
        _started(run.source).inc()
        ANSWERS_STREAMING.inc()

    def on_event(self, run: Run, event: StreamEvent) -> None:
        """The first event of a run counts it as started (one set lookup for the others)."""
        if run not in self._live:
            self._begin(run)

    async def on_finish(self, run: Run) -> None:
        """Count the end, by status and reason, and the time to first token."""
        if run not in self._live:
            self._begin(run)
        self._live.discard(run)
        ANSWERS_STREAMING.dec()
        _ended(run.source, run.status.value, run.error[:40]).inc()
        if run.ttft_ms is not None:
            _first_token("true" if run.replay is not None else "false").observe(run.ttft_ms / 1000)


class MetricsLayer:
    """ASGI layer around the whole app (Reflex's websocket included): open websockets and HTTP responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            WEBSOCKETS.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                WEBSOCKETS.dec()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # the app raised before it answered: the server sends a 500

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            _responses(f"{status // 100}xx").inc()


def set_dependencies(*, redis_degraded: bool, localai_up: bool) -> None:
    """Record what the scraping worker sees of Redis and LocalAI now."""
    REDIS_DEGRADED.set(1 if redis_degraded else 0)
    LOCALAI_UP.set(1 if localai_up else 0)


def render() -> tuple[bytes, str]:
    """(body, content type) of the Prometheus text format: every worker's figures added up."""
    directory = os.environ.get(ENV)
    if not directory or prom_values.ValueClass is prom_values.MutexValue:  # this process keeps its figures in memory
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    reap_dead_workers(directory)
    registry = CollectorRegistry()
    prom_multiprocess.MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
