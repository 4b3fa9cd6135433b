"""GET /metrics over real HTTP (uvicorn on loopback, the LocalAI stand-in): what Prometheus scrapes.

The endpoint is off without METRICS_TOKEN and refuses a scrape without the right bearer token; answers made
through the API are counted when they start and end (by status and reason), with their time to first token;
Redis away shows as degraded. Several workers adding up their figures: tests/multiworker/test_metrics.py.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from rubin_app.config import Settings
from tests.api.conftest import LiveApp
from tests.api.helpers import new_key, new_user
from tests.fakes.localai_standin import StandIn
from tests.fakes.redis_server import RedisServer

TOKEN = secrets.token_hex(24)


def scrape(app: LiveApp, token: str = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one authorized scrape."""
    response = httpx.get(f"{app.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(figures: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter never incremented has no labelled sample yet)."""
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def chat(app: LiveApp, key: str, text: str) -> httpx.Response:
    """One streamed chat completion through the OpenAI-compatible API, read to its end."""
    body = {"model": "standin-model", "stream": True, "messages": [{"role": "user", "content": text}]}
    with httpx.stream(
        "POST", f"{app.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as response:
        response.read()
    return response


def test_metrics_are_off_without_a_token(start_app: Callable[..., LiveApp]) -> None:
    app = start_app()
    assert httpx.get(f"{app.url}/metrics", timeout=10).status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_a_scrape_without_the_right_bearer_token_is_refused(
    start_app: Callable[..., LiveApp], header: str | None
) -> None:
    app = start_app(metrics_token=TOKEN)
    response = httpx.get(f"{app.url}/metrics", headers={"Authorization": header} if header else {}, timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "rubin_answers" not in response.text


def test_answers_are_counted_with_status_reason_and_time_to_first_token(
    start_app: Callable[..., LiveApp], standin: StandIn
) -> None:
    app = start_app(metrics_token=TOKEN, localai_url=standin.url, llm_retries=0)
    key = new_key(app, new_user(app, "ops@example.com"))
    before = scrape(app)
    assert chat(app, key, "hello metrics [[tokens=12]]").status_code == 200
    assert chat(app, key, "this one fails [[fault=http500]]").status_code in (200, 502)
    assert chat(app, key, "this one drops [[fault=drop]] [[tokens=20]]").status_code == 200
    after = scrape(app)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("rubin_answers_started_total", source="api") == 3
    # The dropped one is asked again from its partial text (LocalAI came back) and ends complete.
    assert grew("rubin_answers_ended_total", source="api", status="complete", reason="") == 2
    ended_badly = {
        labels: v - before.get((name, labels), 0.0)
        for (name, labels), v in after.items()
        if name == "rubin_answers_ended_total" and dict(labels)["status"] != "complete"
    }
    assert sum(ended_badly.values()) == 1, ended_badly
    assert all(dict(labels)["reason"] for labels, grown in ended_badly.items() if grown), ended_badly
    # Two answers streamed text (the whole one and the dropped one); the 500 never did.
    assert grew("rubin_time_to_first_token_seconds_count", cached="false") == 2
    assert grew("rubin_time_to_first_token_seconds_bucket", cached="false", le="+Inf") == 2
    assert value(after, "rubin_answers_streaming") == 0
    # Every response by class: the three chats (the 500 as a 502 or a 200 stream with an error) and the first scrape.
    assert grew("rubin_http_responses_total", code="2xx") + grew("rubin_http_responses_total", code="5xx") == 4
    assert value(after, "rubin_localai_up") == 1
    assert value(after, "rubin_redis_degraded") == 0


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


def test_redis_away_shows_as_degraded_and_back_as_not(
    start_app: Callable[..., LiveApp], standin: StandIn, redis_server: RedisServer
) -> None:
    app = start_app(metrics_token=TOKEN, localai_url=standin.url, redis_url=redis_server.url)
    assert value(scrape(app), "rubin_redis_degraded") == 0
    redis_server.stop()
    assert value(scrape(app), "rubin_redis_degraded") == 1
    redis_server.start()
    for _ in range(150):  # the breaker probes Redis again every few seconds
        if value(scrape(app), "rubin_redis_degraded") == 0:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("rubin_redis_degraded stayed 1 after Redis came back")


@pytest.mark.parametrize("token", ["changeme", "short", " " + "x" * 20])
def test_a_weak_metrics_token_stops_the_start_naming_the_setting(token: str) -> None:
    with pytest.raises(ValidationError, match="metrics_token"):
        Settings(metrics_token=token)  # type: ignore[arg-type]
