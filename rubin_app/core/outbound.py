"""The one guard for requests to URLs a user typed (webhooks now; fetch tools and model URLs later).

A user-given URL must not turn the server into a proxy into its own network (SSRF): the scheme must be
http or https, the URL carries no credentials, and every address its host resolves to must be public —
not loopback, private, link-local, multicast, reserved, unspecified, carrier-grade NAT (100.64/10), nor one
of those wrapped in IPv6 (IPv4-mapped, 6to4, NAT64). Names are resolved with the event loop's
getaddrinfo, so `127.1`, `2130706433` and `0x7f.1` are what the system makes of them: 127.0.0.1.

`post()` sends to the address it vetted (the host name goes in the Host header and TLS SNI), so a DNS
answer that changes between the check and the connection (DNS rebinding) cannot slip through; it follows
redirects itself, vetting every hop the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
MAX_REDIRECTS = 3
MAX_URL_LENGTH = 2048
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: the last 32 bits are an IPv4 address
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use NAT64: translates into the local network
DNS_NAME = re.compile(
    r"^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?$"
)


class OutboundError(Exception):
    """An outbound request that did not get an answer; `reason` says why, without the URL (it may hold a token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutboundRefused(OutboundError):
    """The guard refused the URL (or a redirect's): bad scheme, credentials, or a non-public address."""


@dataclass(frozen=True)
class OutboundResponse:
    """What came back: status, headers and the first bytes of the body, and the redirects followed."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    redirects: int
    elapsed_ms: int


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (validated in config) as networks."""
    return tuple(ipaddress.ip_network(i.strip(), strict=False) for i in items if i.strip())


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def non_public_reason(ip: Address) -> str | None:
    """Why an address is not a public destination ("loopback", "private", ...); None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = non_public_reason(inner)
            return f"{reason} (inside an IPv6 address)" if reason else None
        if ip in NAT64_LOCAL:
            return "local NAT64"
    checks = [
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("carrier-grade NAT", isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT),
        ("non-public", not ip.is_global),
    ]
    return next((name for name, hit in checks if hit), None)


def _unwrap(ip: Address) -> Address:
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str  # as resolved: IDNA-encoded, an IPv6 address without brackets
    port: int


def _parse(url: str) -> _Target:
    """Check the URL's shape (scheme, credentials, host, port); no network yet."""
    if len(url) > MAX_URL_LENGTH:
        raise OutboundRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise OutboundRefused("the URL contains spaces or control characters")
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise OutboundRefused("not a valid URL") from None
    if parsed.scheme not in SCHEMES:
        raise OutboundRefused(f"only http:// and https:// URLs are allowed, not {parsed.scheme or 'none'}:")
    if parsed.userinfo:
        raise OutboundRefused("the URL must not contain a user name or password")
    if not host:
        raise OutboundRefused("the URL has no host")
    if not DNS_NAME.match(host):
        try:
            ipaddress.IPv6Address(host if "%" not in host else "-")  # no zone ids (fe80::1%eth0)
        except ValueError:
            raise OutboundRefused("the URL's host is not a valid host name or IP address") from None
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise OutboundRefused("the URL's port is out of range")
    return _Target(url=parsed, host=host, port=port)


async def _resolve(host: str, port: int) -> list[Address]:
    """Every address a host name stands for, through the loop's getaddrinfo."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise OutboundRefused(f"the host {host} does not resolve") from None
    found: list[Address] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise OutboundRefused(f"the host {host} does not resolve")
    return found


async def vetted_addresses(
    url: str, *, allow_private: bool, allowed_networks: Sequence[Network] = ()
) -> tuple[httpx.URL, list[Address]]:
    """The parsed URL and the addresses of its host, after the guard accepted every one of them."""
    target = _parse(url)
    try:
        addresses: list[Address] = [ipaddress.ip_address(target.host)]
        verb = "is"
    except ValueError:
        addresses, verb = await _resolve(target.host, target.port), "resolves to"
    for ip in [] if allow_private else addresses:
        if any(_unwrap(ip) in net or ip in net for net in allowed_networks):
            continue
        reason = non_public_reason(ip)
        if reason is not None:
            article = "an" if reason[0] in "aeiou" else "a"
            raise OutboundRefused(f"{target.host} {verb} {article} {reason} address; only public addresses are allowed")
    return target.url, addresses


async def check_url(url: str, *, allow_private: bool, allowed_networks: Sequence[Network] = ()) -> None:
    """Raise OutboundRefused unless `url` is http(s), without credentials, and every address of its host is
    public (or any address at all with `allow_private`, or inside `allowed_networks`)."""
    await vetted_addresses(url, allow_private=allow_private, allowed_networks=allowed_networks)


def new_transport() -> httpx.AsyncHTTPTransport:
    """The transport for post(): no retries, and no kept-alive connections.

    post() connects to an IP address and names the host only in SNI and the Host header, so a pooled
    connection is keyed by the address: reusing one verified for another host name on the same address
    would skip the certificate check of the new name. Each request gets its own connection instead.
    """
    return httpx.AsyncHTTPTransport(retries=0, limits=httpx.Limits(max_keepalive_connections=0))


async def _read_head(response: httpx.Response, limit: int) -> bytes:
    """At most `limit` bytes of the body; the rest is never read."""
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


async def _send_pinned(
    transport: httpx.AsyncBaseTransport,
    url: httpx.URL,
    addresses: Sequence[Address],
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,
    max_body: int,
) -> tuple[int, httpx.Headers, bytes]:
    """POST to the vetted addresses in turn (the next one only when connecting failed)."""
    sni = {"sni_hostname": url.host} if url.scheme == "https" else {}
    own = {k: v for k, v in headers.items() if k.lower() not in ("host", "accept-encoding")}
    last: httpx.ConnectError | None = None
    for ip in addresses:
        request = httpx.Request(
            "POST",
            url.copy_with(host=str(ip)),
            content=content,
            headers={**own, "host": url.netloc.decode("ascii"), "accept-encoding": "identity"},
            extensions={"timeout": httpx.Timeout(timeout).as_dict(), **sni},
        )
        try:
            response = await transport.handle_async_request(request)
        except httpx.ConnectError as exc:
            last = exc
            continue
        response.request = request
        try:
            body = await _read_head(response, max_body)
        finally:
            await response.aclose()
        return response.status_code, response.headers, body
    raise last or httpx.ConnectError("no address to connect to")


def _transport_error(exc: httpx.TransportError, timeout: float) -> OutboundError:
    """A readable reason that never repeats the URL."""
    if isinstance(exc, httpx.TimeoutException):
        return OutboundError(f"no answer within {timeout:g} s")
    if isinstance(exc, httpx.ConnectError):
        return OutboundError("could not connect")
    if isinstance(exc, httpx.RemoteProtocolError):
        return OutboundError("the server broke the HTTP protocol or closed the connection")
    return OutboundError(f"request failed ({type(exc).__name__})")


async def post(
    transport: httpx.AsyncBaseTransport,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    allow_private: bool,
    allowed_networks: Sequence[Network] = (),
    timeout: float = 15.0,
    max_redirects: int = MAX_REDIRECTS,
    max_body: int = 4096,
) -> OutboundResponse:
    """POST `content` to a user-given URL through the guard; follow up to `max_redirects` redirects.

    Every hop is vetted like the first (a redirect to a refused address raises OutboundRefused) and sent
    the same POST, body and headers (the signature of a webhook does not cover the URL). `timeout` bounds
    the whole call, redirects included. Raises OutboundError when no final answer came back.
    """
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            for hop in range(max_redirects + 1):
                try:
                    parsed, addresses = await vetted_addresses(
                        url, allow_private=allow_private, allowed_networks=allowed_networks
                    )
                except OutboundRefused as exc:
                    raise OutboundRefused(f"redirect refused: {exc.reason}" if hop else exc.reason) from None
                status, response_headers, body = await _send_pinned(
                    transport, parsed, addresses, content=content, headers=headers, timeout=timeout, max_body=max_body
                )
                location = response_headers.get("location", "")
                if status not in REDIRECT_STATUSES or not location:
                    elapsed = int((time.monotonic() - started) * 1000)
                    return OutboundResponse(status, response_headers, body, hop, elapsed)
                url = urljoin(str(parsed), location)
    except TimeoutError:
        raise OutboundError(f"no answer within {timeout:g} s") from None
    except httpx.TransportError as exc:
        raise _transport_error(exc, timeout) from None
    raise OutboundError(f"more than {max_redirects} redirects")
