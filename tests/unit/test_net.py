"""The client address behind trusted proxies, and which origins may act on the app."""

from __future__ import annotations

from rubin_app.services.net import client_address, forwarded_proto, origin_allowed

PROXY = ["10.0.0.0/8"]


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    assert client_address("203.0.113.9", "1.2.3.4", PROXY) == "203.0.113.9"  # spoofed by the client itself
    assert client_address("10.0.0.2", "1.2.3.4, 198.51.100.7", PROXY) == "198.51.100.7"  # rightmost untrusted
    assert client_address("10.0.0.2", "198.51.100.7, 10.0.0.5", PROXY) == "198.51.100.7"  # two proxies
    assert client_address("10.0.0.2", "", []) == "10.0.0.2"


def test_an_ipv4_mapped_proxy_address_is_still_the_proxy() -> None:
    assert client_address("::ffff:10.0.0.2", "198.51.100.7", PROXY) == "198.51.100.7"


def test_junk_in_forwarded_for_is_never_the_client() -> None:
    assert client_address("10.0.0.2", "1.2.3.4:5555", PROXY) == "10.0.0.2"
    assert client_address("10.0.0.2", "<script>", PROXY) == "10.0.0.2"
    assert client_address("10.0.0.2", "10.0.0.3", PROXY) == "10.0.0.2"  # only proxies: the nearest one


def test_forwarded_proto_only_from_a_trusted_proxy() -> None:
    assert forwarded_proto("10.0.0.2", "https", "http", PROXY) == "https"
    assert forwarded_proto("203.0.113.9", "https", "http", PROXY) == "http"


def test_origins() -> None:
    assert origin_allowed(None, "chat.example.com", "")  # not a browser page (curl, SDKs)
    assert origin_allowed("https://chat.example.com", "chat.example.com", "", scheme="https")
    assert origin_allowed("https://chat.example.com", "internal:3000", "https://chat.example.com")
    assert not origin_allowed("http://chat.example.com", "chat.example.com", "", scheme="https")  # downgrade
    assert not origin_allowed("https://chat.example.com:8443", "chat.example.com", "", scheme="https")
    assert not origin_allowed("https://other.example.com", "chat.example.com", "", scheme="https")
    assert not origin_allowed("null", "chat.example.com", "")
    assert not origin_allowed("https://chat.example.com.evil.example", "chat.example.com", "")
    assert origin_allowed("http://localhost:3000", "localhost:8000", "", extra=("http://localhost:3000",))
