"""One worker, one process: the app served by granian's embedded server in the process that imported it.

With several workers Reflex's production server runs granian's supervisor, which imports the app and forks the
workers from it. With one (no Redis, or WORKERS=1: scripts/run.sh's and the image's default) that made two
processes each holding the app, ~95 + ~105 MB PSS. Here the app is imported once and served by
`granian.server.embed`: the same Rust HTTP/websocket server, the same ASGI app (Reflex's, with the built frontend
mounted) and the same lifespan, in this process's asyncio loop. SIGTERM or Ctrl-C stop it as granian stops a
worker: no new connections, then the app's lifespan ends (live answers are handed over, rubin_app/rubin_app.py).

What the supervisor did that this does not: start a crashed worker again (rubin_app/serve_workers.py). With one
process a crash ends it; the container's restart policy (or systemd) starts it again, and the answers it was
generating are continued at the next start (rubin_app/services/recovery.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from rubin_app.config import Settings

SETTLE_SECONDS = 5.0  # after the start: one full collection, then what the start made is kept out of later ones


def settle_memory() -> None:
    """Collect the start's garbage once, freeze what is left (never scanned again) and let the collector run."""
    gc.collect()
    gc.freeze()
    gc.enable()


def server_options(settings: Settings) -> dict[str, Any]:
    """TLS options for granian when Rubin serves HTTPS itself (TLS_CERT_FILE), as the supervisor's server gets."""
    if settings.tls_cert_file is None:
        return {}
    from rubin_app.serve_tls import tls_options

    return tls_options(settings)


async def _serve(server: Any) -> None:
    """Serve until SIGTERM / SIGINT, then stop the way granian stops a worker (the lifespan's shutdown runs)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.stop)
    if not gc.isenabled():  # paused for the start by `container serve`
        loop.call_later(SETTLE_SECONDS, settle_memory)
    await server.serve()


def exit_now(code: int) -> NoReturn:
    """End the process once the app has stopped, as granian ends a worker process: not waiting for what the app
    left behind (tasks of answers already handed over, idle database threads), which would hold the exit."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(
    host: str, port: int, log_level: str, settings: Settings, *, on_loaded: Callable[[], None] | None = None
) -> int:
    """Import the app and serve it in this process with one worker (the built frontend mounted: the caller sets
    REFLEX_MOUNT_FRONTEND_COMPILED_APP); `on_loaded` runs once the app is imported. Returns the exit code when
    stopped (0), or when the app could not start (1, the error printed); then call `exit_now`."""
    try:
        server = _server(host, port, log_level, settings, on_loaded)
    except Exception:  # an import or settings error: printed as Python would, then the exit code
        traceback.print_exc()
        return 1
    redirect = None
    if settings.tls_cert_file is not None:
        from rubin_app.serve_tls import start_redirect

        redirect = start_redirect(settings)
    loop = asyncio.new_event_loop()  # not asyncio.run: it would wait for every task left, see exit_now
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(server))
        return 0
    except Exception as exc:  # the lifespan's start failed: granian logged why
        print(f"[rubin] the app did not start ({type(exc).__name__}: {exc}; the error is above)", file=sys.stderr)
        return 1
    finally:
        if redirect is not None:
            from rubin_app.serve_tls import stop_redirect

            stop_redirect(redirect)


def _server(host: str, port: int, log_level: str, settings: Settings, on_loaded: Callable[[], None] | None) -> Any:
    """granian's embedded server for the app, imported here."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server
    from reflex import constants
    from reflex.utils import prerequisites

    app = getattr(prerequisites.get_app(), constants.CompileVars.APP)  # the rx.App: called, it gives the ASGI app
    if on_loaded is not None:
        on_loaded()
    return Server(
        target=app,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        log_level=LogLevels(log_level),
        **server_options(settings),
    )
