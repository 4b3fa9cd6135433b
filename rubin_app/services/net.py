"""Who is on the other end of a request: the client address behind trusted proxies, and allowed origins.

One place for both front doors (the HTTP routes and Reflex's websocket), so a spoofed X-Forwarded-For
is never believed and every part of the app sees the same client address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def parse_networks(items: tuple[str, ...]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES entries as networks (validated in config)."""
    return tuple(ipaddress.ip_network(i, strict=False) for i in items)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address as an IP (an IPv4-mapped IPv6 address as the IPv4 one); None when it is not one."""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in net for net in networks)


def client_address(peer: str, forwarded_for: str, trusted_proxies: Iterable[str]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then X-Forwarded-For from the right.

    Each trusted hop appends the address it saw, so the list is read right to left and the first address
    that is not a trusted proxy is the client (anything to its left was written by the client itself).
    """
    networks = parse_networks(tuple(trusted_proxies))
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            ip = _ip(hop)  # junk, or an address with a port, is not a client address: the proxy is
            return str(ip) if ip is not None else peer
    return peer


def forwarded_proto(peer: str, proto_header: str, scheme: str, trusted_proxies: Iterable[str]) -> str:
    """The scheme the client used: X-Forwarded-Proto when a trusted proxy sent it, else the connection's."""
    networks = parse_networks(tuple(trusted_proxies))
    if networks and _trusted(peer, networks) and proto_header:
        value = proto_header.split(",")[0].strip().lower()
        if value in ("http", "https"):
            return value
    return scheme


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower-cased; "" when it has none."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(origin: str | None, host: str, public_url: str, extra: Iterable[str] = (), scheme: str = "") -> bool:
    """Whether a browser request from `origin` may act on this app (websocket handshake, CORS).

    Allowed: no Origin header at all (not a browser page: curl, the SDKs), the app's own public origin
    (PUBLIC_URL), the same scheme and host the request was sent to, and `extra` (the dev frontend's origin).
    A page on another port or another subdomain of the same host is a different origin: refused.
    """
    if origin is None:
        return True
    origin = origin.strip().lower()
    if not origin or origin == "null":
        return False
    if public_url and origin == origin_of(public_url):
        return True
    if origin in {o.lower() for o in extra}:
        return True
    parts = urlsplit(origin)
    # http://host is not https://host. An https page asking a server that sees plain http is a TLS proxy
    # in front (not declared in TRUSTED_PROXIES): as trustworthy as the app itself.
    same_scheme = not scheme or parts.scheme in (scheme, "https")
    return bool(host) and same_scheme and parts.netloc == host.strip().lower()
