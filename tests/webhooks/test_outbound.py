"""The outbound guard (rubin_app/core/outbound.py): which URLs are refused, and what post() does on the wire.

How this is tested honestly without the internet: the receivers run on loopback, which the guard refuses.
The first hop is let through with `allowed_networks=[127.0.0.1/32]` — a narrow exception, not
`allow_private` — so every other private address stays refused on later hops, exactly as in production.
A second server on 127.0.0.2 plays the internal service an attacker wants to reach: a test shows a
redirect to it is refused and that it received nothing, and the control test shows the same redirect does
reach it when its address is allowed (so the refusal is the guard's doing, not a dead server). Names go
through the real resolver: `localhost`, `2130706434` (127.0.0.2 in decimal) and `0x7f.1` are resolved by
getaddrinfo, like any host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import httpx
import pytest

from rubin_app.core.outbound import (
    OutboundError,
    OutboundRefused,
    check_url,
    new_transport,
    non_public_reason,
    parse_networks,
    post,
)
from tests.webhooks.receiver import Receiver, Reply

LOOPBACK_ONLY = parse_networks(["127.0.0.1/32"])

REFUSED = {
    "http://localhost/": "localhost resolves to a loopback address",
    "http://localhost.:8080/x": "localhost.",  # loopback, or unresolvable without DNS: refused either way
    "http://127.1/": "127.1 resolves to a loopback address",
    "http://2130706433/": "2130706433 resolves to a loopback address",
    "http://0x7f.1/": "resolves to a loopback address",
    "http://127.0.0.1:3000/": "127.0.0.1 is a loopback address",
    "http://[::1]/": "::1 is a loopback address",
    "http://0.0.0.0/": "0.0.0.0 is an unspecified address",
    "http://[::]/": "is an unspecified address",
    "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is a link-local address",
    "http://[fe80::1]/": "is a link-local address",
    "http://10.0.0.5/": "10.0.0.5 is a private address",
    "http://10.255.255.255:8443/": "is a private address",
    "http://172.16.3.4/": "is a private address",
    "http://192.168.1.1/": "is a private address",
    "http://[fd12:3456::1]/": "is a private address",
    "http://100.64.0.1/": "is a carrier-grade NAT address",
    "http://224.0.0.251/": "is a multicast address",
    "http://[ff02::1]/": "is a multicast address",
    "http://240.0.0.1/": "is a reserved address",
    "http://[::ffff:127.0.0.1]/": "loopback (inside an IPv6 address)",
    "http://[::ffff:169.254.169.254]/": "link-local (inside an IPv6 address)",
    "http://[64:ff9b::a00:1]/": "private (inside an IPv6 address)",  # NAT64 of 10.0.0.1
    "http://[2002:c0a8:101::1]/": "private (inside an IPv6 address)",  # 6to4 of 192.168.1.1
    "http://[64:ff9b:1::1]/": "local NAT64",
    "ftp://example.com/file": "only http:// and https:// URLs are allowed, not ftp:",
    "file:///etc/passwd": "not file:",
    "gopher://example.com/": "not gopher:",
    "http://user:pass@example.com/": "must not contain a user name or password",
    "https://token@example.com/": "must not contain a user name or password",
    "http:///path": "has no host",
    "http://exa mple.com/": "spaces or control characters",
    "http://example.com/\r\nX-Injected: 1": "spaces or control characters",
    "http://[fe80::1%25eth0]/": "not a valid host name",
    "http://example.com:0/": "port is out of range",
    "http://does-not-exist.invalid/": "does not resolve",
}


@pytest.mark.parametrize("url", list(REFUSED))
async def test_the_guard_refuses(url: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        await check_url(url, allow_private=False)
    assert REFUSED[url] in refused.value.reason


@pytest.mark.parametrize(
    "url",
    ["https://93.184.215.14/hook", "http://8.8.8.8:8080/x?y=1", "https://[2606:4700:4700::1111]/", "http://1.1.1.1"],
)
async def test_public_addresses_pass(url: str) -> None:
    await check_url(url, allow_private=False)  # literals: no DNS, no connection


async def test_allow_private_lets_loopback_and_lan_through_but_never_other_schemes() -> None:
    for url in ("http://localhost/", "http://127.1/", "http://[::1]:9/", "http://10.1.2.3/", "http://169.254.169.254/"):
        await check_url(url, allow_private=True)
    for url in ("ftp://localhost/", "http://u:p@localhost/"):
        with pytest.raises(OutboundRefused):
            await check_url(url, allow_private=True)


async def test_allowed_networks_are_a_narrow_exception() -> None:
    await check_url("http://localhost:8080/", allow_private=False, allowed_networks=LOOPBACK_ONLY)  # by name
    await check_url("http://[::ffff:127.0.0.1]/", allow_private=False, allowed_networks=LOOPBACK_ONLY)
    for url in ("http://127.0.0.2/", "http://2130706434/", "http://[::1]/", "http://10.0.0.1/"):
        with pytest.raises(OutboundRefused):
            await check_url(url, allow_private=False, allowed_networks=LOOPBACK_ONLY)


def test_every_category_has_a_reason() -> None:
    assert non_public_reason(ipaddress.ip_address("8.8.8.8")) is None
    assert non_public_reason(ipaddress.ip_address("2001:4860:4860::8888")) is None
    assert non_public_reason(ipaddress.ip_address("::ffff:8.8.8.8")) is None  # a public IPv4, mapped
    assert non_public_reason(ipaddress.ip_address("100.127.255.255")) == "carrier-grade NAT"
    assert non_public_reason(ipaddress.ip_address("192.0.2.1")) is not None  # documentation range
    assert non_public_reason(ipaddress.ip_address("255.255.255.255")) is not None  # broadcast


# --------------------------------------------------------------------------- post() over real sockets


@pytest.fixture
async def internal() -> AsyncIterator[Receiver]:
    """The internal service an attacker would like to reach: 127.0.0.2, never allowed."""
    server = await Receiver("127.0.0.2").start()
    yield server
    await server.close()


@pytest.fixture
async def transport() -> AsyncIterator[httpx.AsyncHTTPTransport]:
    async with new_transport() as t:
        yield t


async def _post(transport: httpx.AsyncHTTPTransport, url: str, **kwargs: object):
    options: dict[str, object] = {"allow_private": False, "allowed_networks": LOOPBACK_ONLY, "timeout": 3, **kwargs}
    return await post(transport, url, content=b'{"a":1}', headers={"content-type": "application/json"}, **options)  # type: ignore[arg-type]


async def test_post_sends_to_the_vetted_address_with_the_original_host(receiver: Receiver, transport) -> None:
    response = await _post(transport, f"http://localhost:{receiver.port}/hook?x=1")
    assert response.status_code == 200 and response.body == b"ok" and response.redirects == 0
    [got] = await receiver.wait_for(1)
    assert (got.method, got.path, got.body) == ("POST", "/hook?x=1", b'{"a":1}')
    assert got.headers["host"] == f"localhost:{receiver.port}"  # pinned to 127.0.0.1, named as typed
    assert got.headers["accept-encoding"] == "identity"


async def test_a_redirect_to_an_internal_address_is_refused(receiver: Receiver, internal: Receiver, transport) -> None:
    for target in (internal.url("/admin"), f"http://2130706434:{internal.port}/admin", "http://169.254.169.254/"):
        receiver.replies = [Reply(302, headers={"location": target})]
        with pytest.raises(OutboundRefused) as refused:
            await _post(transport, receiver.url())
        assert refused.value.reason.startswith("redirect refused:")
        assert "address" in refused.value.reason
    assert len(receiver.received) == 3
    await asyncio.sleep(0.1)
    assert internal.received == []  # never contacted


async def test_control_the_same_redirect_reaches_an_allowed_address(receiver: Receiver, internal: Receiver, transport):
    """Without this, the refusal above could be a server that was never there."""
    receiver.replies = [Reply(307, headers={"location": f"http://2130706434:{internal.port}/admin"})]
    allowed = parse_networks(["127.0.0.1/32", "127.0.0.2/32"])
    response = await _post(transport, receiver.url(), allowed_networks=allowed)
    assert response.status_code == 200 and response.redirects == 1
    [got] = await internal.wait_for(1)
    assert (got.method, got.body) == ("POST", b'{"a":1}')  # the same POST, re-sent


async def test_redirects_to_other_schemes_and_too_many_redirects(receiver: Receiver, transport) -> None:
    receiver.replies = [Reply(301, headers={"location": "file:///etc/passwd"})]
    with pytest.raises(OutboundRefused, match="not file:"):
        await _post(transport, receiver.url())
    receiver.replies = [Reply(302, headers={"location": "/again"}) for _ in range(5)]
    with pytest.raises(OutboundError, match="more than 2 redirects"):
        await _post(transport, receiver.url(), max_redirects=2)
    assert [r.path for r in receiver.received[1:]] == ["/hook", "/again", "/again"]


async def test_only_the_head_of_a_large_answer_is_read(receiver: Receiver, transport) -> None:
    receiver.replies = [Reply(500, body=b"x" * 1_000_000)]
    response = await _post(transport, receiver.url(), max_body=100)
    assert (response.status_code, len(response.body)) == (500, 100)


async def test_a_silent_server_times_out(receiver: Receiver, transport) -> None:
    receiver.replies = [Reply(hold=True)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(OutboundError, match=r"no answer within 0.5 s"):
        await _post(transport, receiver.url(), timeout=0.5)
    assert loop.time() - started < 2


async def test_connection_errors_never_repeat_the_url(transport) -> None:
    from tests.conftest import free_port

    with pytest.raises(OutboundError) as failed:
        await _post(transport, f"http://127.0.0.1:{free_port()}/hook?token=s3cr3t")
    assert failed.value.reason == "could not connect"
