"""GET /metrics on three workers: whichever worker a scrape reaches, it reports every worker's figures.

Answers are asked through the OpenAI-compatible API on connections the kernel spreads over the workers; then
each worker is scraped in turn and must report the same totals (prometheus-client's multiprocess mode, one
directory per instance). A tab's websocket shows in the open-websockets gauge on every worker's scrape.
"""

from __future__ import annotations

import http.client
import json

from prometheus_client.parser import text_string_to_metric_families

from .helpers import METRICS_TOKEN, WORKERS, Cluster, close_all, open_tab, run, unique, wait_until
from .test_api_across_workers import _key_for, _request


def _scrape_every_worker(app: Cluster, attempts: int = 80) -> dict[int, dict[str, float]]:
    """{worker pid: {sample name with labels: value}}, once every worker has answered a scrape."""
    scrapes: dict[int, dict[str, float]] = {}
    for _ in range(attempts):
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
        try:
            conn.connect()
            pid = wait_until(lambda c=conn: app.owner(c.sock.getsockname()), timeout=5, what="the scraped worker")
            if pid in scrapes:
                continue
            conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            response = conn.getresponse()
            body = response.read().decode()
            assert response.status == 200, body[:300]
        finally:
            conn.close()
        scrapes[pid] = {
            sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }
        if len(scrapes) == WORKERS:
            return scrapes
    raise AssertionError(f"only {len(scrapes)} of {WORKERS} workers answered /metrics")


def _figure(scrape: dict[str, float], name: str, **labels: str) -> float:
    return scrape.get(name + json.dumps(labels, sort_keys=True), 0.0)


def test_every_worker_reports_the_answers_of_all_workers(app: Cluster) -> None:
    email, _ = app.new_user("metrics")
    key = _key_for(app, email)
    before = _scrape_every_worker(app)
    started_before = {_figure(s, "rubin_answers_started_total", source="api") for s in before.values()}
    assert len(started_before) == 1, f"the workers disagree before the answers: {before.keys()} {started_before}"
    served_by: list[int] = [0]
    for i in range(2 * WORKERS):  # each on another worker than the one before
        body = {"model": "standin-model", "messages": [{"role": "user", "content": f"{unique('metric')} {i}"}]}
        pid, status, reply = _request(app, "POST", "/v1/chat/completions", key, body, avoid=served_by[-1])
        assert status == 200, reply[:300]
        served_by.append(pid)
    assert len(set(served_by[1:])) >= 2
    after = _scrape_every_worker(app)
    (baseline,) = started_before
    for pid, scrape in after.items():
        grown = _figure(scrape, "rubin_answers_started_total", source="api") - baseline
        assert grown == 2 * WORKERS, f"worker {pid} reports {grown} new answers, not {2 * WORKERS}"
        assert _figure(scrape, "rubin_answers_streaming") == 0
    ended = {
        _figure(s, "rubin_answers_ended_total", source="api", status="complete", reason="") for s in after.values()
    }
    assert len(ended) == 1, f"the workers disagree on the answers ended: {ended}"


def test_an_open_tab_shows_in_every_workers_scrape(app: Cluster) -> None:
    _email, cookie = app.new_user("wsmetrics")

    async def scenario() -> None:
        tab = await open_tab(app, cookie)
        try:
            scrapes = _scrape_every_worker(app)
            counts = {pid: _figure(s, "rubin_websocket_connections") for pid, s in scrapes.items()}
            assert all(count >= 1 for count in counts.values()), counts
            assert len(set(counts.values())) == 1, f"the workers disagree: {counts}"
        finally:
            await close_all([tab])

    run(scenario())


def test_the_kubernetes_probe_paths_answer_on_the_served_port(app: Cluster) -> None:
    """deploy/k8s probes: readiness GET /api/health, liveness and startup GET /ping (Reflex), on every worker."""
    for path, check in (("/api/health", lambda body: json.loads(body)["status"] == "ok"),
                        ("/ping", lambda body: "pong" in body)):  # fmt: skip
        seen: set[int] = set()
        for _ in range(60):
            conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
            try:
                conn.connect()
                seen.add(wait_until(lambda c=conn: app.owner(c.sock.getsockname()), timeout=5, what="the worker"))
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read().decode()
            finally:
                conn.close()
            assert response.status == 200 and check(body), (path, response.status, body[:200])
            if len(seen) == WORKERS:
                break
        assert len(seen) == WORKERS, f"{path}: only {len(seen)} workers answered"
