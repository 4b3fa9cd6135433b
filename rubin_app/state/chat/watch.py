"""An open chat hears of answers started elsewhere: another tab or device of the user, or a program through the
REST API. Each tab with an idle chat open runs a `watch` background event (no lock held while it waits); when an
answer starts in that conversation (on any worker: the worker bus), the tab reloads the chat and follows the
answer live like its own.

Watchers live in this worker's memory, keyed by tab; a tab watches one chat at a time and a watcher ends when
its tab moves to another chat, starts an answer itself, or after WATCH_SECONDS (a closed tab's watcher does
not linger for ever; a tab reopened or reloaded starts a new one).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import reflex as rx

from rubin_app.core.waiting import wait_event
from rubin_app.services.runtime import CHAT_CHANGED, Runtime, get_runtime
from rubin_app.state.chat.common import _following, events_of, opened_js

WATCH_SECONDS = 30 * 60.0
WAKE_CHECK_SECONDS = 60.0


@dataclass(eq=False)
class _Watcher:
    user_id: int
    conversation_id: str
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False


_by_tab: dict[str, _Watcher] = {}
_by_chat: dict[tuple[int, str], set[_Watcher]] = {}
_listening: set[int] = set()  # ids of the runtimes whose bus already calls `_wake`


async def _wake(message: dict[str, Any]) -> None:
    """Bus handler: an answer started in a conversation; wake this worker's tabs that show it."""
    key = (message.get("user_id"), message.get("conversation_id"))
    for watcher in list(_by_chat.get(key, ())):  # type: ignore[arg-type]
        watcher.woken.set()


def _listen(rt: Runtime) -> None:
    if id(rt) not in _listening:
        _listening.add(id(rt))
        rt.bus.on(CHAT_CHANGED, _wake)


def _register(token: str, watcher: _Watcher) -> None:
    previous = _by_tab.get(token)
    if previous is not None:
        _end(token, previous)
    _by_tab[token] = watcher
    _by_chat.setdefault((watcher.user_id, watcher.conversation_id), set()).add(watcher)


def _end(token: str, watcher: _Watcher) -> None:
    watcher.ended = True
    watcher.woken.set()
    if _by_tab.get(token) is watcher:
        del _by_tab[token]
    key = (watcher.user_id, watcher.conversation_id)
    watchers = _by_chat.get(key)
    if watchers is not None:
        watchers.discard(watcher)
        if not watchers:
            del _by_chat[key]


class WatchMixin(rx.State, mixin=True):
    """The `watch` background event (mixed into ChatState)."""

    @rx.event(background=True)
    async def watch(self, cid: str):
        """Wait for an answer started elsewhere in chat `cid`, then show it and follow it."""
        rt = get_runtime()
        _listen(rt)
        await rt.bus.ensure_listening()
        token = self.router.session.client_token
        watcher = _Watcher(await self._user_id(), cid)  # type: ignore[attr-defined]
        _register(token, watcher)
        deadline = time.monotonic() + WATCH_SECONDS
        try:
            while not watcher.ended and time.monotonic() < deadline:
                if not await wait_event(watcher.woken, WAKE_CHECK_SECONDS):
                    continue
                watcher.woken.clear()
                if watcher.ended:
                    return
                async with self:
                    if self.conversation_id != cid:  # type: ignore[attr-defined]
                        return
                    if self.streaming_id or _following.get(token):  # type: ignore[attr-defined]
                        continue  # this tab is following an answer already (maybe the one it sent itself)
                    opened = await self._open(cid)  # type: ignore[attr-defined]
                yield rx.call_script(opened_js(cid))
                for event in events_of(opened):
                    yield event
                return  # the follower shows the answer; it watches again when the answer ends
        finally:
            _end(token, watcher)
