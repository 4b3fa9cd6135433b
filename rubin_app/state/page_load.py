"""A page load starts from the compiled defaults, not from the chat the tab showed before.

A tab keeps its state across reloads (same tab token), and the page load's hydration sends every var that differs
from the page's compiled defaults: the messages of the chat the tab showed last time and its model lists, which
the page's on_load then loads (and sends) again. The page drew that stale chat first, then the real one. On the
first hydration of a page (the browser sends the hashes of its compiled defaults; a reconnect sends none and keeps
what the page shows), those vars go back to their defaults before the snapshot, so they cross the websocket once.
"""

from __future__ import annotations

from typing import Any

from reflex.middleware import Middleware
from reflex_base.constants import CompileVars

from rubin_app.state.chat import ChatState

HYDRATE_AND_LOAD = f".{CompileVars.HYDRATE_AND_LOAD}"
RELOADED_BY_ON_LOAD = ("messages", "tail", "models", "model_groups")  # lists ChatState.on_load sets again


class FreshPageLoad(Middleware):
    """Empties what the chat page's on_load loads again, before a page load's hydration snapshot."""

    async def preprocess(self, app: Any, state: Any, event: Any) -> None:
        if not event.name.endswith(HYDRATE_AND_LOAD) or not (event.payload or {}).get(CompileVars.PAYLOAD_HASHES):
            return None
        chat = await state.get_state(ChatState)
        for name in RELOADED_BY_ON_LOAD:
            if getattr(chat, name):
                setattr(chat, name, [])
        return None
