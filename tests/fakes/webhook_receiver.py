"""A webhook receiver for tests that drive Rubin from another thread (sync tests, Playwright): a threaded HTTP
server on a loopback address that records every POST and answers 204; `verified()` checks each request with
the `standardwebhooks` package and returns the payloads."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


class ThreadedReceiver:
    """Listens on `host` (e.g. 127.0.0.2, the one private address an e2e app may call) and a free port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://{host}:{self.server.server_address[1]}/hook"

    def verified(self, secret: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The first `count` events once they arrived, each verified with `secret`, with its webhook-id as "id"."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} webhooks arrived"
            time.sleep(0.05)
        return [
            {**Webhook(secret).verify(body, headers), "id": headers["webhook-id"]}
            for headers, body in self.received[:count]
        ]

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
