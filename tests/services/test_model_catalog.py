"""The model list while LocalAI hangs: page loads share one fetch and never queue behind the network.

The stand-in accepts GET /v1/models and never answers (`models_fault="hang"`): the old catalog held its
lock across that call, so every page load waited for the one before it to time out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from rubin_app.services.runtime import Runtime
from tests.fakes.localai_standin import StandIn

MODELS = ["standin-model", "standin-small"]


async def timed(call: Awaitable[list[str]]) -> tuple[list[str], float]:
    began = time.monotonic()
    result = await call
    return list(result), time.monotonic() - began


async def until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_hung_localai_serves_the_cached_list_at_once_with_one_fetch(runtime: Runtime, standin: StandIn) -> None:
    catalog = runtime.catalog
    catalog.timeout = 1.0  # the shared fetch gives up after a second (the test's teardown stays short)
    assert await catalog.get() == MODELS and standin.model_requests == 1
    standin.config.models_fault = "hang"
    catalog.fetched_at = 0.0  # the list is due for a refresh

    results = await asyncio.wait_for(asyncio.gather(*(timed(catalog.get()) for _ in range(10))), timeout=3)
    assert [models for models, _ in results] == [MODELS] * 10
    assert max(took for _, took in results) < 0.5, results
    await until(lambda: standin.model_requests == 2)  # the one refresh reached the stand-in...
    again = await asyncio.wait_for(asyncio.gather(*(timed(catalog.get()) for _ in range(10))), timeout=3)
    assert [models for models, _ in again] == [MODELS] * 10 and max(took for _, took in again) < 0.5
    assert standin.model_requests == 2  # ...and the callers joined it instead of sending their own

    await until(lambda: catalog.error is not None, timeout=3)  # the fetch gave up: the old list stays
    assert catalog.error is not None and catalog.error.code == "timeout"
    assert await catalog.get() == MODELS


async def test_with_no_list_yet_concurrent_page_loads_share_one_bounded_fetch(
    runtime: Runtime, standin: StandIn
) -> None:
    catalog = runtime.catalog
    catalog.timeout = 0.5
    standin.config.models_fault = "hang"
    results = await asyncio.wait_for(asyncio.gather(*(timed(catalog.get()) for _ in range(10))), timeout=3)
    assert [models for models, _ in results] == [[]] * 10
    assert max(took for _, took in results) < 1.5, results  # one timeout for all, not one after another
    assert standin.model_requests == 1
    assert catalog.error is not None and catalog.error.code == "timeout"
    # The failure is known now: the next page load gets the empty list and the error at once.
    models, took = await asyncio.wait_for(timed(catalog.get()), timeout=3)
    assert models == [] and took < 0.5

    standin.config.models_fault = "none"  # LocalAI is back; once the fetch under way gave up,
    await asyncio.sleep(catalog.timeout + 0.2)  # an explicit refresh waits for the list
    assert await catalog.get(refresh=True) == MODELS and catalog.error is None


async def test_refresh_skips_the_shared_fetch_under_way(runtime: Runtime, standin: StandIn) -> None:
    """A refresh asked while a plain fetch is in flight still gets LocalAI's current list."""
    catalog = runtime.catalog
    assert await catalog.get() == MODELS
    standin.config.models = ["other"]
    catalog.fetched_at = 0.0
    plain, refreshed = await asyncio.gather(catalog.get(), catalog.get(refresh=True))
    assert refreshed == ["other"] and plain in (MODELS, ["other"])
