"""Install the websocket and state-store hardening into the Reflex app (before the server starts)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from reflex.config import get_config
from reflex.istate.manager.disk import StateManagerDisk

from rubin_app.config import Settings
from rubin_app.services import sessions
from rubin_app.state import stream_channel
from rubin_app.state.log_redaction import install as install_log_redaction
from rubin_app.state.socket import SecureEventNamespace
from rubin_app.state.tab_store import TabStateDisk, TabStateRedis
from rubin_app.state.uploads import BoundUploads

log = logging.getLogger(__name__)
# The second purge of an ended session's tabs: after the event that ended it (sign-out, deletion) has
# finished and saved, and after every worker's 2-second cache of the session has expired.
PURGE_AGAIN_AFTER = 3.0


async def _purge_later(store: Any, token_hashes: list[str]) -> None:
    await asyncio.sleep(PURGE_AGAIN_AFTER)
    try:
        await store.purge_sessions(token_hashes)
    except Exception:
        log.exception("purging the tab states of ended sessions failed")


def _bind_uploads(app: Any, settings: Settings) -> None:
    """Reflex's /_upload runs on the tab's session-bound state, from this site's pages only (state/uploads.py)."""
    dev_origins = tuple(o for o in get_config().cors_allowed_origins if o != "*")
    layers = app.api_transformer
    if not any(getattr(layer, "binds_uploads", False) for layer in (layers if isinstance(layers, list) else [])):

        def layer(inner: Any) -> BoundUploads:
            return BoundUploads(inner, settings, dev_origins)

        layer.binds_uploads = True  # type: ignore[attr-defined]
        if isinstance(layers, list):
            layers.append(layer)
        else:
            app.api_transformer = [layers, layer] if layers is not None else [layer]


def install(app: Any, settings: Settings) -> None:
    """Session-bound tab states, the hardened websocket, purges on sign-out, redacted logs."""
    manager = app._state_manager
    if type(manager) is StateManagerDisk:
        manager = app._state_manager = TabStateDisk()
    if isinstance(manager, TabStateDisk | TabStateRedis):
        manager.anonymous_seconds = settings.anonymous_state_minutes * 60
    old = app.event_namespace
    if old is not None and not isinstance(old, SecureEventNamespace):
        dev_origins = tuple(o for o in get_config().cors_allowed_origins if o != "*")
        namespace = SecureEventNamespace(old.namespace, app, settings, dev_origins)
        namespace._token_manager = old._token_manager
        app._event_namespace = namespace
        app.sio.register_namespace(namespace)

    stream_channel.bind(app.event_namespace)  # streamed text goes straight to the tabs' sockets
    _bind_uploads(app, settings)

    pending: set[asyncio.Task] = set()

    async def purge(token_hashes: list[str]) -> None:
        """Purge now what no event is using, and everything again once in-flight events and caches are done."""
        store = app._state_manager
        if not hasattr(store, "purge_sessions"):
            return
        await store.purge_sessions(token_hashes)
        task = asyncio.create_task(_purge_later(store, token_hashes))
        pending.add(task)
        task.add_done_callback(pending.discard)

    sessions.ended_hooks[:] = [purge]
    install_log_redaction()
