"""HTTPS served by Rubin itself: granian with the configured certificate, and a plain-HTTP port that redirects.

`reflex run --env prod` builds its granian server in `reflex.utils.exec.run_granian_backend_prod` and passes no
TLS options (granian's GRANIAN_SSL_* variables are read by granian's own command line only). So rxconfig calls
`install(settings)` before Reflex starts serving: granian's `Server` class becomes a subclass that adds
TLS_CERT_FILE / TLS_KEY_FILE and, with TLS_REDIRECT_PORT, starts the redirect listener
(`python -m rubin_app.serve_tls`, a one-worker granian of `redirect_app`) for as long as it serves.

The redirect goes to PUBLIC_URL's origin (required with TLS; never a host taken from the request) with the
request's path and query, as a 308 (method and body kept).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from rubin_app.config import Settings, get_settings
from rubin_app.services.net import origin_of

log = logging.getLogger(__name__)

MAX_TARGET = 8_000  # longest path + query a redirect carries (longer: to the site's root)


def redirect_location(public_url: str, raw_path: bytes, query: bytes) -> str:
    """The https URL a plain-HTTP request is sent to: PUBLIC_URL's origin plus the request's path and query."""
    path = raw_path.decode("latin-1") or "/"
    if not path.startswith("/"):
        path = "/"
    target = path + ("?" + query.decode("latin-1") if query else "")
    if len(target) > MAX_TARGET or any(ord(c) < 0x21 or ord(c) > 0x7E for c in target):
        target = "/"  # never copy control characters or spaces into a header
    return origin_of(public_url) + target


async def redirect_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI app of the redirect listener: every HTTP request gets a 308 to the same path over HTTPS."""
    if scope["type"] != "http":
        return
    path, query = scope.get("raw_path") or b"/", scope.get("query_string", b"")
    location = redirect_location(get_settings().public_url, path, query)
    body = b"Rubin is served over HTTPS: " + location.encode("latin-1") + b"\n"
    headers = [
        (b"location", location.encode("latin-1")),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 308, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _redirect_command() -> list[str]:
    return [sys.executable, "-m", "rubin_app.serve_tls"]


def start_redirect(settings: Settings) -> subprocess.Popen[bytes] | None:
    """Start the redirect listener on TLS_REDIRECT_PORT (None when it is 0)."""
    if not settings.tls_redirect_port:
        return None
    env = {**os.environ, "RUBIN_REDIRECT_PARENT": str(os.getpid())}
    return subprocess.Popen(_redirect_command(), env=env)


def stop_redirect(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop the redirect listener."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def tls_options(settings: Settings) -> dict[str, Any]:
    """granian's server arguments for the configured certificate, key and lowest TLS version."""
    from granian.constants import SSLProtocols

    password = settings.tls_key_password.get_secret_value() if settings.tls_key_password else None
    return {
        "ssl_cert": settings.tls_cert_file,
        "ssl_key": settings.tls_key_file,
        "ssl_key_password": password,
        "ssl_protocol_min": SSLProtocols.tls13 if settings.tls_min_version == "1.3" else SSLProtocols.tls12,
    }


def _tls_server(base: type[Any], settings: Settings) -> type[Any]:
    """A subclass of granian's Server serving HTTPS with the configured certificate (and the redirect port)."""
    tls = tls_options(settings)

    class TLSServer(base):  # type: ignore[misc]
        rubin_tls = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, **tls})

        def serve(self, *args: Any, **kwargs: Any) -> Any:
            redirect = start_redirect(settings)
            try:
                return super().serve(*args, **kwargs)
            finally:
                stop_redirect(redirect)

    return TLSServer


def install(settings: Settings) -> bool:
    """Make Reflex's production server speak HTTPS when TLS_CERT_FILE is set; False (no change) otherwise."""
    if settings.tls_cert_file is None:
        return False
    import granian.server

    if not getattr(granian.server.Server, "rubin_tls", False):
        granian.server.Server = _tls_server(granian.server.Server, settings)
    return True


def _exit_with_parent(parent: int) -> None:
    """End this listener when the server that started it is gone (even if it was killed)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main() -> None:
    """Serve the redirect listener on TLS_REDIRECT_PORT (all addresses) until stopped."""
    from granian.constants import Interfaces
    from granian.server import MPServer

    settings = get_settings()
    if not settings.tls_redirect_port:
        raise SystemExit("TLS_REDIRECT_PORT is not set: there is no port to redirect from")
    parent = int(os.environ.get("RUBIN_REDIRECT_PARENT", "0"))
    if parent:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    server = MPServer(
        target="rubin_app.serve_tls:redirect_app",
        address="0.0.0.0",  # the redirect port listens where the HTTPS port does
        port=settings.tls_redirect_port,
        interface=Interfaces.ASGINL,
        workers=1,
        log_access=False,
    )
    server.serve()


if __name__ == "__main__":
    main()
