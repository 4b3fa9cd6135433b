"""What the chat state's parts share: the views the UI renders, the client-side variables the streamed
text and older pages go into, and which answer each tab follows."""

from __future__ import annotations

import dataclasses
import json
import logging

from reflex.experimental.client_state import ClientStateVar

from rubin_app.generation.run import Run
from rubin_app.knowledge import citations
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
