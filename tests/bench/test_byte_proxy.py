"""The side-by-side bench's counting proxy: what a server sends crosses it unchanged and is counted per server port."""

from __future__ import annotations

import gc
import socket
import struct
import threading

from bench.byte_proxy import ByteProxy


def _server(reply: bytes) -> tuple[socket.socket, int]:
    """A one-connection TCP server that reads a request line, answers `reply` and closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return listener, int(listener.getsockname()[1])


def _through(proxy: ByteProxy, port: int, request: bytes) -> bytes:
    """Connect through the proxy (SOCKS5, IPv4 CONNECT), send `request`, read until the server closes."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port))
        assert s.recv(10)[:2] == b"\x05\x00"
        s.sendall(request)
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def test_proxy_passes_bytes_through_and_counts_only_what_the_server_sent() -> None:
    reply = "Привет, мир! 👋".encode() * 5000
    listener, port = _server(reply)
    proxy = ByteProxy().start()
    try:
        assert _through(proxy, port, b"GET / HTTP/1.1\r\n\r\n") == reply
        assert proxy.received(port) == len(reply)
        assert proxy.received(port + 1) == 0
    finally:
        proxy.stop()
        listener.close()


def test_stop_ends_open_tunnels_and_leaves_no_socket_or_task_behind() -> None:
    release = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])

    def hold() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"hello")
            release.wait(10)

    threading.Thread(target=hold, daemon=True).start()
    proxy = ByteProxy().start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"\x05\x01\x00")
            assert s.recv(2) == b"\x05\x00"
            s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port))
            assert s.recv(10)[:2] == b"\x05\x00"
            assert s.recv(5) == b"hello"
            proxy.stop()
            assert s.recv(1) == b"", "the tunnel must be closed by stop()"
        # A socket or task the proxy left open would be reported here (warnings are errors in this suite).
        gc.collect()
        assert proxy.received(port) == 5
    finally:
        release.set()
        proxy.stop()
        listener.close()
