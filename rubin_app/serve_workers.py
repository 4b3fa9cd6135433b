"""Reflex's production server (granian) with dead workers replaced.

By default granian stops the whole server when one worker exits unexpectedly (killed, out of memory, a crash in
native code): every user of that instance would lose their connection at once. With `respawn_failed_workers` the
one worker is started again (granian gives up on a crash loop: the same worker failing again within about 5 s);
the answers that worker was generating are continued by the others (rubin_app/services/recovery.py).
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    """Make the production server respawn failed workers (idempotent; wraps whatever server class is in place)."""
    import granian.server

    base = granian.server.Server
    if getattr(base, "rubin_respawn", False):
        return

    class RespawningServer(base):  # type: ignore[misc, valid-type]
        rubin_respawn = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{"respawn_failed_workers": True, **kwargs})

    granian.server.Server = RespawningServer
