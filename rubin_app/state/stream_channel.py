"""Streamed text on the tab's own websocket, without Reflex's event envelope.

A piece of an answer used to travel as a Reflex update carrying a `_call_script` of `window.rubin.stream(...)`:
~280 bytes of envelope around ~40 characters. Now the follower emits the socket.io event `rs` on the same
connection (so the same session binding and the same order as the tab's other updates) with compact operations,
read by assets/stream.js (the chat follower, state/chat/answers.py, sends them):

    x             reset the live answer
    t<n>|<text>   answer text from code point n (a tab that has more skips the overlap: a resumed follower
                  continues exactly where the text was; a piece ahead of the text before it waits for it)
    r<n>|<text>   reasoning, likewise
    d<id>:<n>     the live text (n code points) is message <id>'s: the browser keeps it, the saved answer's update
                  does not carry it (a browser whose count differs missed text and loads the chat again)
    f<id>,<id>    the exchange leaving the tail (these messages), kept by the browser from its own copy of the tail
                  (its kept answer's text filled in there): the page has every tail it was sent, nothing is resent
    p             the exchange the browser showed as pending (what it sent) is saved: drop it

A piece costs ~25 bytes beyond its text. When the tab's socket is not on this worker (it reconnected elsewhere
while the answer streamed here), `send` says so and the caller sends the same operations through Reflex's own
events (`ops_js`), which Reflex forwards to the right worker.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from rubin_app.services.text import for_storage

log = logging.getLogger(__name__)

EVENT = "rs"
RESET = "x"
UNPEND = "p"  # applied with the tail's update, like "d" and "f"

_namespace: Any = None  # Reflex's event namespace (state/hardening.py binds it at start)


def bind(namespace: Any) -> None:
    """Use this event namespace to reach the tabs' sockets."""
    global _namespace
    _namespace = namespace


async def close_tabs() -> int:
    """This worker stops: close its tabs' sockets before anything else, so that what they send next goes to another
    worker (a page reconnects at once, and re-attaches to its answer there). How many were closed."""
    namespace = _namespace
    if namespace is None:
        return 0
    sids = list(namespace._token_manager.sid_to_token)
    for sid in sids:
        try:
            await namespace.disconnect(sid)
        except Exception:  # already gone: nothing to close
            log.debug("socket %s was already closed", sid)
    return len(sids)


def text_op(offset: int, text: str) -> str:
    """Answer text from code point `offset`."""
    return f"t{offset}|{for_storage(text)}"


def think_op(offset: int, text: str) -> str:
    """Reasoning from code point `offset`."""
    return f"r{offset}|{for_storage(text)}"


def keep_op(message_id: int, length: int) -> str:
    """The live text (`length` code points) is this message's: the browser keeps it."""
    return f"d{message_id}:{length}"


def fold_op(message_ids: list[int]) -> str:
    """An exchange the browser keeps from now on: the messages of the tail it was sent last, by id (assets/stream.js
    keeps the views of the tails it receives; its kept answer's text is filled in there)."""
    return "f" + ",".join(str(int(i)) for i in message_ids)


def pieces(text: str, think: str, text_at: int, think_at: int, reset: bool = False) -> list[str]:
    """The operations that show new text and reasoning (after a reset, when asked)."""
    ops = [RESET] if reset else []
    if text:
        ops.append(text_op(text_at, text))
    if think:
        ops.append(think_op(think_at, think))
    return ops


async def send(token: str, ops: list[str]) -> bool:
    """Emit the operations to the tab's socket on this worker; False when it is not here (use `ops_js`)."""
    namespace = _namespace
    if namespace is None or not ops:
        return namespace is not None
    manager = namespace._token_manager
    record = manager.token_to_socket.get(token)
    if record is None or record.instance_id != manager.instance_id:
        return False
    await namespace.emit(EVENT, tuple(ops), to=record.sid)  # a tuple: one socket.io argument per operation
    return True


def ops_js(ops: list[str]) -> str:
    """The same operations as a script, for Reflex's own events."""
    return f"window.rubinStream&&window.rubinStream.apply(refs,{json.dumps(ops, ensure_ascii=False)})"
