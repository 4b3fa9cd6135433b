"""A tiny SOCKS5 proxy that counts the bytes servers send to the browser, per server port, as they cross TCP.

Chromium is started with `--proxy-server=socks5://127.0.0.1:<port> --proxy-bypass-list=<-loopback>`, so every
connection to a local app (HTTP, websocket) goes through here unchanged: the counts are the TCP payload the app
sends (HTTP headers and bodies as sent, compressed or not; websocket frames with their headers; TLS if any), not
the IP/TCP headers. No rewriting of ports or addresses: the app sees the browser's own requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import defaultdict


class ByteProxy:
    """A SOCKS5 (no auth, CONNECT only) proxy on loopback in a thread of its own; `received(port)` is the number of
    bytes the server on that port has sent towards the browser so far."""

    def __init__(self) -> None:
        self._counts: defaultdict[int, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    def start(self) -> ByteProxy:
        """Listen on a free loopback port; returns once it accepts connections."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the byte-counting proxy did not start")
        return self

    @property
    def chromium_args(self) -> list[str]:
        """Chromium flags that send every connection, loopback included, through this proxy."""
        return [f"--proxy-server=socks5://127.0.0.1:{self.port}", "--proxy-bypass-list=<-loopback>"]

    def received(self, port: int) -> int:
        """Bytes sent by the server on `port` to the browser since the proxy started."""
        with self._lock:
            return self._counts[port]

    def stop(self) -> None:
        """Close the listener, end every open tunnel (their sockets closed, their tasks finished) and the thread."""
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _shutdown(self) -> None:
        """Stop accepting, cancel the tunnels and wait until they have closed both of their sockets, then stop."""
        if self._server is not None:
            self._server.close()
        tunnels = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tunnels:
            task.cancel()
        await asyncio.gather(*tunnels, return_exceptions=True)
        self._loop.call_soon(self._loop.stop)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_writer: asyncio.StreamWriter | None = None
        try:
            host, port = await _handshake(reader, writer)
            up_reader, up_writer = await asyncio.open_connection(host, port)
            sock = up_writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            writer.write(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port))
            await writer.drain()
            await asyncio.gather(self._pipe(reader, up_writer, None), self._pipe(up_reader, writer, port))
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            # Cancelled by stop() or ended: both sockets are closed before the task ends (none left to the GC).
            for end in (writer, up_writer):
                if end is not None:
                    end.close()
                    with contextlib.suppress(OSError, asyncio.CancelledError):
                        await end.wait_closed()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, count_port: int | None) -> None:
        try:
            while data := await src.read(65536):
                if count_port is not None:
                    with self._lock:
                        self._counts[count_port] += len(data)
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.close()


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[str, int]:
    """SOCKS5 greeting and CONNECT request; returns the target (host, port)."""
    version, methods = await reader.readexactly(2)
    await reader.readexactly(methods)
    if version != 5:
        raise ValueError("not SOCKS5")
    writer.write(b"\x05\x00")
    await writer.drain()
    _ver, cmd, _rsv, atyp = await reader.readexactly(4)
    if cmd != 1:
        raise ValueError("only CONNECT")
    if atyp == 1:
        host = socket.inet_ntoa(await reader.readexactly(4))
    elif atyp == 3:
        host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
    elif atyp == 4:
        host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
    else:
        raise ValueError("bad address type")
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    return host, port
