"""What the chat state's parts share: the views the UI renders, the client-side variables the streamed
text and older pages go into, and which answer each tab follows."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import reflex as rx
from reflex.experimental.client_state import ClientStateVar

from rubin_app.generation.run import Run
from rubin_app.knowledge import citations
from rubin_app.services.text import for_storage

log = logging.getLogger(__name__)

# Client-side vars the streamed answer is appended to (never sent whole over the websocket).
stream_text = ClientStateVar.create("rubinstream", default="")
stream_think = ClientStateVar.create("rubinthink", default="")
# Finished answers' text the browser already has (streamed there): by message id, so the saved answer's update does
# not carry it again (assets/stream.js; MsgView.kept).
kept_text = ClientStateVar.create("rubinkept", default={})
# Exchanges finished since the chat was opened, one page each, oldest first: handed to the browser as they leave the
# tail, never sent whole again (assets/stream.js "f").
recent_pages = ClientStateVar.create("rubinrecent", default=[])
# The exchange just sent, shown before it is saved: the browser's own (assets/stream.js puts the question it sends
# there and drops it with the saved exchange's update), so it never crosses the websocket.
pending_exchange = ClientStateVar.create("rubinpending", default=[])
# Older pages of the open chat, newest page first (appended as the reader scrolls up; see history.js).
older_pages = ClientStateVar.create("rubinolder", default=[])
# A temporary chat's finished exchanges: in the browser's memory only (never in a tab state on disk or in
# Redis), so a reload forgets them (state/chat/temporary.py).
temporary_pages = ClientStateVar.create("rubintemp", default=[])

PAGE_SIZE = 50  # messages a chat opens with, and per older page

PENDING_QUESTION, PENDING_ANSWER = -1, -2  # the ids of the pending exchange the browser shows (assets/stream.js)
# Adaptive coalescing: with many tabs streaming in this worker, each gets pieces less often (2 ms more per
# streaming tab, 250 ms at most), so the worker's push rate stays bounded and no stream stalls.
COALESCE_PER_TAB_S, MAX_COALESCE_S = 0.002, 0.25
# An answer's first half second goes out every STREAM_COALESCE_MS, the rest LATER_FACTOR times less often (8 pieces
# a second with the default 50 ms: smooth to read, and an answer's bytes are then mostly its own text).
SMOOTH_START_S, LATER_FACTOR = 0.5, 2.5

# Which answer each browser tab is following: a follower stops when its tab moves elsewhere.
_following: dict[str, int] = {}

# The follower that streams to each tab now: a newer one (a reconnect, a reopened chat) ends the older one, so two
# never send one tab the same answer.
_followers: dict[str, object] = {}

# A tab's newest answer, reachable by Stop before its row is saved (under load saving can take a while).
_early: dict[str, Run] = {}

# A temporary chat's turns (role, text) per tab, for the model's context: this process's memory only.
_temporary_turns: dict[str, list[tuple[str, str]]] = {}


@dataclasses.dataclass
class SourceView:
    """A numbered source under an answer."""

    n: int = 0
    chunk_id: int = 0
    file_id: int = 0
    label: str = ""  # file, page, section
    text: str = ""  # the passage (shortened)
    cited: bool = False  # the answer's text cites it


@dataclasses.dataclass
class MemoryView:
    """A memory an answer added (shown as "Memory updated", with Undo)."""

    id: int = 0
    text: str = ""


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
    sources: list[SourceView] = dataclasses.field(default_factory=list)
    memories: list[MemoryView] = dataclasses.field(default_factory=list)
    kept: bool = False  # the text is the browser's (kept_text), not in `content`: this tab streamed it


_VIEW_DEFAULTS = {
    f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    for f in dataclasses.fields(MsgView)
}


@rx.serializer(to=dict)
def slim_view(view: MsgView) -> dict[str, object]:
    """A message view as it crosses the websocket: fields at their default are left out (assets/stream.js fills them
    in before the app reads the frame)."""
    return {k: v for k, d in _VIEW_DEFAULTS.items() if (v := getattr(view, k)) != d or k == "id"}


@dataclasses.dataclass
class ChatItem:
    """A sidebar entry."""

    id: str = ""
    title: str = ""


def _js(value: str) -> str:
    # A lone surrogate (a model streaming half an emoji) cannot be encoded for the websocket: show U+FFFD.
    return json.dumps(for_storage(value), ensure_ascii=False)


# A chat opened: the browser forgets the finished exchanges and kept text of the chat it showed before.
CLEAR_KEPT_JS = "window.rubinStream&&window.rubinStream.clear(refs)"


def opened_js(cid: str) -> str:
    """Script for a chat just opened in a tab: the older pages of the last chat go and the newest message shows
    (history.js), nothing kept from the last chat stays (stream.js)."""
    return f"window.rubinHistory&&window.rubinHistory.reset(refs,{_js(cid)});{CLEAR_KEPT_JS}"


def events_of(opened: Any) -> list[Any]:
    """What ChatState._open returned (an event, a list of them or None), as a list."""
    return opened if isinstance(opened, list) else [] if opened is None else [opened]


def unpend_js(text: str | None = None) -> str:
    """Script dropping the browser's pending exchange: the one of a refused send asking `text` (the page's last send,
    when the page showed it), or whichever there is (None)."""
    arg = "" if text is None else f",{_js(text)}"
    return f"window.rubinStream&&window.rubinStream.unpend(refs{arg})"


def push_js(text: str, think: str = "", reset: bool = False) -> str:
    """Script appending (or resetting) the streamed answer in the browser (a reset drops a pending exchange too)."""
    return f"window.rubin&&window.rubin.stream(refs,{_js(text)},{_js(think)},{'true' if reset else 'false'})"


def annotation_views(annotations: str, text: str) -> dict[str, list]:
    """An answer's sources and memory notes as the UI shows them (from `Message.annotations`)."""
    sources, memories = citations.load(annotations)
    cited = set(citations.cited(text, sources))
    return {
        "sources": [
            SourceView(
                n=s.n,
                chunk_id=s.chunk_id,
                file_id=s.file_id,
                label=s.label(),
                text=s.text[: citations.PASSAGE_CHARS],
                cited=s.n in cited,
            )
            for s in sources
        ],
        "memories": [MemoryView(id=int(m.get("id", 0)), text=str(m.get("text", ""))) for m in memories],
    }
