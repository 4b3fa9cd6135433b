"""What the chat state's parts share: the views the UI renders, the client-side variables the streamed
text and older pages go into, and which answer each tab follows."""

from __future__ import annotations

import dataclasses
import json
import logging

from reflex.experimental.client_state import ClientStateVar

from rubin_app.generation.run import Run
from rubin_app.services.text import for_storage

log = logging.getLogger(__name__)

# Client-side vars the streamed answer is appended to (never sent whole over the websocket).
stream_text = ClientStateVar.create("rubinstream", default="")
stream_think = ClientStateVar.create("rubinthink", default="")
# Older pages of the open chat, newest page first (appended as the reader scrolls up; see history.js).
older_pages = ClientStateVar.create("rubinolder", default=[])
# A temporary chat's finished exchanges: in the browser's memory only (never in a tab state on disk or in
# Redis), so a reload forgets them (state/chat/temporary.py).
temporary_pages = ClientStateVar.create("rubintemp", default=[])

PAGE_SIZE = 50  # messages a chat opens with, and per older page

RECENT_MAX = 40
PENDING_QUESTION, PENDING_ANSWER = -1, -2
# Adaptive coalescing: with many tabs streaming in this worker, each gets pieces less often (2 ms more per
# streaming tab, 250 ms at most), so the worker's push rate stays bounded and no stream stalls.
COALESCE_PER_TAB_S, MAX_COALESCE_S = 0.002, 0.25

# Which answer each browser tab is following: a follower stops when its tab moves elsewhere.
_following: dict[str, int] = {}

# A tab's newest answer, reachable by Stop before its row is saved (under load saving can take a while).
_early: dict[str, Run] = {}

# A temporary chat's turns (role, text) per tab, for the model's context: this process's memory only.
_temporary_turns: dict[str, list[tuple[str, str]]] = {}


@dataclasses.dataclass
class MsgView:
    """A message as the UI shows it."""

    id: int = 0
    role: str = ""
    content: str = ""
    reasoning: str = ""
    status: str = ""
    error: str = ""  # an error code; the UI translates it (err_<code> in i18n)
    error_detail: str = ""
    model: str = ""
    stats: str = ""


@dataclasses.dataclass
class ChatItem:
    """A sidebar entry."""

    id: str = ""
    title: str = ""


def _js(value: str) -> str:
    # A lone surrogate (a model streaming half an emoji) cannot be encoded for the websocket: show U+FFFD.
    return json.dumps(for_storage(value), ensure_ascii=False)


def push_js(text: str, think: str = "", reset: bool = False) -> str:
    """Script appending (or resetting) the streamed answer in the browser."""
    return f"window.rubin&&window.rubin.stream(refs,{_js(text)},{_js(think)},{'true' if reset else 'false'})"
