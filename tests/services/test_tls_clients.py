"""TLS to Redis and LocalAI, against real servers with certificates made here: verified by default, refused
with a certificate from another CA, a private CA trusted only through its setting.

Every Redis client of the app is checked with the URL it really gets (`tls.redis_url`): Rubin's own store (cache,
limits, bus, relay), Reflex's state and token managers (`make_client`) and the plain clients Reflex makes for its
health check and worker count (`Redis.from_url`, what rxconfig's `redis_url` reaches).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from rubin_app.config import get_settings
from rubin_app.core import tls
from rubin_app.llm.client import LLMClient, LLMError
from rubin_app.services.redis_store import RedisStore
from rubin_app.state.resilient.guard import make_client
from tests.fakes.certs import TestCA
from tests.fakes.localai_standin import StandIn, StandInConfig
from tests.fakes.redis_server import RedisServer, RedisTLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCA, TestCA]:
    """The CA that signs the servers' certificates, and an unrelated one."""
    folder = tmp_path_factory.mktemp("pki")
    return TestCA(folder / "ca"), TestCA(folder / "other", name="Somebody Else CA")


@pytest.fixture(scope="module")
def tls_redis(pki: tuple[TestCA, TestCA]) -> Iterator[RedisServer]:
    """A real redis-server that speaks TLS only."""
    ca, _ = pki
    issued = ca.issue("redis")
    server = RedisServer(tls=RedisTLS(issued.cert, issued.key, ca.cert)).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def mtls_redis(pki: tuple[TestCA, TestCA]) -> Iterator[RedisServer]:
    """A real redis-server that speaks TLS and wants a client certificate from the CA (tls-auth-clients)."""
    ca, _ = pki
    issued = ca.issue("redis-mtls")
    server = RedisServer(tls=RedisTLS(issued.cert, issued.key, ca.cert, require_client_cert=True)).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def https_standin(pki: tuple[TestCA, TestCA]) -> Iterator[StandIn]:
    """The LocalAI stand-in served over HTTPS with a certificate of the test CA."""
    ca, _ = pki
    issued = ca.issue("localai")
    server = StandIn(StandInConfig(tokens=5), tls=(issued.cert, issued.key)).start()
    yield server
    server.stop()


async def _store_round_trip(url: str) -> str:
    store = RedisStore(url, timeout=2)
    try:
        assert await store.ping(), store.last_error

        async def write_read(client: aioredis.Redis) -> str:
            await client.set(store.key("tls-check"), "over TLS")
            return (await client.get(store.key("tls-check"))).decode()

        return await store.run(write_read, lambda: "fallback")
    finally:
        await store.close()


# --------------------------------------------------------------------------- Redis


async def test_every_redis_client_reaches_redis_over_tls_with_the_ca(
    app_env: Callable[..., None], tls_redis: RedisServer, pki: tuple[TestCA, TestCA]
) -> None:
    ca, _ = pki
    app_env(redis_url=tls_redis.url, redis_ca_file=str(ca.cert))
    url = tls.redis_url(get_settings())
    assert url.startswith("rediss://") and "ssl_ca_certs=" in url
    assert await _store_round_trip(url) == "over TLS"  # Rubin's store: cache, limits, bus, relay
    reflex_manager = make_client(url, 2.0)  # Reflex's state and token managers (state/resilient)
    try:
        assert await reflex_manager.ping()
        assert (await reflex_manager.get("rubin:tls-check")) == b"over TLS"
    finally:
        await reflex_manager.aclose()
    reflex_plain = redis.Redis.from_url(url)  # Reflex's worker count and health check (prerequisites.get_redis*)
    try:
        assert reflex_plain.ping()
    finally:
        reflex_plain.close()


async def test_redis_with_a_certificate_from_another_ca_is_refused(
    app_env: Callable[..., None], tls_redis: RedisServer, pki: tuple[TestCA, TestCA]
) -> None:
    _, other = pki
    app_env(redis_url=tls_redis.url, redis_ca_file=str(other.cert))
    url = tls.redis_url(get_settings())
    client = aioredis.Redis.from_url(url, socket_timeout=2)
    try:
        with pytest.raises(RedisConnectionError, match="certificate verify failed"):
            await client.ping()
    finally:
        await client.aclose()
    store = RedisStore(url, timeout=2)
    try:
        assert not await store.ping()  # the app treats it as Redis being away: fallbacks, health "degraded"
    finally:
        await store.close()


async def test_redis_certificates_are_verified_by_default(app_env: Callable[..., None], tls_redis: RedisServer) -> None:
    app_env(redis_url=tls_redis.url)  # no REDIS_CA_FILE: the system's CAs, which do not know the test CA
    client = aioredis.Redis.from_url(tls.redis_url(get_settings()), socket_timeout=2)
    try:
        with pytest.raises(RedisConnectionError, match="certificate verify failed"):
            await client.ping()
    finally:
        await client.aclose()


async def test_redis_client_certificate(
    app_env: Callable[..., None], mtls_redis: RedisServer, pki: tuple[TestCA, TestCA]
) -> None:
    ca, _ = pki
    app_env(redis_url=mtls_redis.url, redis_ca_file=str(ca.cert))
    without = aioredis.Redis.from_url(tls.redis_url(get_settings()), socket_timeout=2)
    try:
        with pytest.raises(RedisConnectionError):
            await without.ping()
    finally:
        await without.aclose()
    client = ca.issue("rubin-app", client=True)
    app_env(redis_url=mtls_redis.url, redis_ca_file=str(ca.cert), redis_cert_file=str(client.cert),
            redis_key_file=str(client.key))  # fmt: skip
    assert await _store_round_trip(tls.redis_url(get_settings())) == "over TLS"


# --------------------------------------------------------------------------- LocalAI


def _client(verify: object) -> LLMClient:
    return LLMClient(get_settings().llm_base_url, connect_timeout=2, read_timeout=5, retries=2, backoff=0.01,
                     verify=verify)  # type: ignore[arg-type]  # fmt: skip


async def test_localai_over_https_with_the_ca_setting(
    app_env: Callable[..., None], https_standin: StandIn, pki: tuple[TestCA, TestCA]
) -> None:
    ca, _ = pki
    app_env(localai_url=https_standin.url, localai_ca_file=str(ca.cert))
    client = _client(tls.localai_verify(get_settings()))
    try:
        models = await client.list_models()
        answer = await client.complete(models[0], [{"role": "user", "content": "Hello over TLS"}], max_tokens=5)
        assert answer and https_standin.last_request_json is not None
    finally:
        await client.aclose()


@pytest.mark.parametrize("which", ["system", "other"])
async def test_localai_with_an_untrusted_certificate_is_refused_clearly(
    app_env: Callable[..., None], https_standin: StandIn, pki: tuple[TestCA, TestCA], which: str
) -> None:
    _, other = pki
    app_env(localai_url=https_standin.url, localai_ca_file=str(other.cert) if which == "other" else None)
    https_standin.reset()
    client = _client(tls.localai_verify(get_settings()))
    try:
        with pytest.raises(LLMError, match=r"TLS certificate .* is not trusted") as caught:
            await client.list_models()
    finally:
        await client.aclose()
    assert caught.value.code == "unreachable"
    assert https_standin.model_requests == 0  # nothing was sent: the handshake failed


async def test_localai_verification_off_is_explicit_and_loud(
    app_env: Callable[..., None], https_standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    app_env(localai_url=https_standin.url, localai_tls_verify="false")
    with caplog.at_level(logging.WARNING, logger="rubin_app.core.tls"):
        verify = tls.localai_verify(get_settings())
    assert verify is False
    assert "NOT checked" in caplog.text and "LOCALAI_CA_FILE" in caplog.text
    client = _client(verify)
    try:
        assert await client.list_models()
    finally:
        await client.aclose()


def test_plain_urls_are_left_alone(app_env: Callable[..., None], tmp_path: Path) -> None:
    app_env(redis_url="redis://127.0.0.1:6379/0", localai_url="http://127.0.0.1:8080")
    settings = get_settings()
    assert tls.redis_url(settings) == "redis://127.0.0.1:6379/0"
    assert tls.localai_verify(settings) is True


async def test_the_runtime_uses_the_tls_settings(
    make_runtime: Callable[..., Any], tls_redis: RedisServer, https_standin: StandIn, pki: tuple[TestCA, TestCA]
) -> None:
    """The app's wiring (one Runtime per worker) hands the CA settings to its Redis store and LocalAI client."""
    ca, _ = pki
    rt = await make_runtime(redis_url=tls_redis.url, redis_ca_file=str(ca.cert), localai_url=https_standin.url,
                            localai_ca_file=str(ca.cert))  # fmt: skip
    try:
        assert await rt.redis_health() == {"configured": True, "ok": True}
        assert await rt.client.list_models()
    finally:
        await rt.redis.close()
