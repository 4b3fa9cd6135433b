"""Temporary chats (mixed into ChatState): a switch starts a chat that leaves nothing behind.

Each answer is a run saved nowhere (services/temporary_chat.py) that streams like any other (the same
client-side variable; Stop reaches it through `_early`). A finished exchange goes to the browser's memory only
(the client-side list `temporary_pages`), not to the tab's state, which is stored on disk or in Redis; the
turns the model needs as context stay in this process's memory (`_temporary_turns`). Opening another chat,
New chat or a reload ends the temporary chat: its exchanges are forgotten and a running answer is stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import reflex as rx

from rubin_app.generation.run import Run
from rubin_app.models import Message, MessageRole
from rubin_app.services import temporary_chat
from rubin_app.services.runtime import get_runtime
from rubin_app.services.text import for_storage
from rubin_app.state import stream_channel
from rubin_app.state.chat.common import (
    PENDING_ANSWER,
    MsgView,
    _early,
    _following,
    _temporary_turns,
    opened_js,
    push_js,
    unpend_js,
)

log = logging.getLogger(__name__)

MAX_TABS = 2_000  # temporary chats one worker keeps context for (the oldest is forgotten first)
MAX_TURNS = 200  # turns kept per temporary chat (the context budget trims what is sent anyway)
_CLIENT = "_client_state_rubintemp"
_SETTER = "_client_state_setRubintemp"


def pages_js(append: list[dict[str, object]] | None = None) -> str:
    """Script that appends an exchange to the browser's temporary pages (or, without one, empties them)."""
    page = json.dumps(append or [], ensure_ascii=False)
    value = f"(refs['{_CLIENT}']||[]).concat([{page}])" if append else "[]"
    return f"(function(){{var v={value};if(refs['{_SETTER}'])refs['{_SETTER}'](v);else refs['{_CLIENT}']=v;}})()"


def forget(token: str) -> None:
    """Drop a tab's temporary turns (it left the temporary chat)."""
    _temporary_turns.pop(token, None)


class TemporaryMixin(rx.State, mixin=True):
    """The temporary-chat switch and the follower of its answers."""

    temporary: bool = False

    @rx.event
    async def toggle_temporary(self):
        """Start a temporary chat (an empty one, at /), or leave it for a new normal chat."""
        if self.streaming_id:
            return rx.toast.warning(self._t("err_busy"))
        opened = await self._open("")  # drops what is shown; a temporary chat's turns are forgotten
        self.temporary = not self.temporary
        return [
            rx.call_script("window.history.replaceState(null,'','/')"),
            # older pages and the finished exchanges of the chat shown before go too
            rx.call_script(opened_js("")),
            rx.call_script(pages_js()),
            *(opened if isinstance(opened, list) else [opened]),
        ]

    def _start_temporary(self, text: str, user_id: int) -> asyncio.Task[Run]:
        """Ask for a temporary answer (called holding the state, after the exchange is shown as pending)."""
        history = list(_temporary_turns.get(self.router.session.client_token, []))
        return asyncio.create_task(
            temporary_chat.send(
                get_runtime(), user_id=user_id, history=history, text=text, model=self.model, ip=self._client_ip()
            )
        )

    async def _follow_temporary(self, starting: asyncio.Task[Run]):
        """Stream a temporary answer into this tab; at the end the exchange joins the browser's temporary pages."""
        token = self.router.session.client_token
        await asyncio.wait([starting])
        if starting.cancelled() or starting.exception() is not None:  # refused: limits, model, input
            async for event in self._send_failed(starting):
                yield event
            return
        run = _early[token] = starting.result()
        rt = get_runtime()

        def here() -> bool:
            return _following.get(token) == PENDING_ANSWER and _early.get(token) is run

        try:
            fresh, text_at, think_at = True, 0, 0
            async for text, think in run.follow(0, rt.settings.stream_coalesce_ms / 1000):
                if not here():  # the tab left the temporary chat (another chat, New chat, reload): nobody reads it
                    await rt.generation.stop_run(run, wait=False)
                    return
                ops = stream_channel.pieces(text, think, text_at, think_at, reset=fresh)
                if (event := await self._push(ops)) is not None:  # type: ignore[attr-defined]
                    yield event
                fresh, text_at, think_at = False, text_at + len(text), think_at + len(think)
            async with self:
                if not here():
                    return
                exchange = self._end_temporary_answer(run)
            # shown from the browser's memory from now on, in place of the pending exchange (one render)
            yield rx.call_script(f"{pages_js(exchange)};{unpend_js()}")
            async with self:
                if here():
                    _following.pop(token, None)
                    self._asked, self.streaming_id = "", 0
        finally:
            if _early.get(token) is run:
                del _early[token]
        yield rx.call_script(push_js("", "", reset=True))

    def _end_temporary_answer(self, run: Run) -> list[dict[str, object]]:
        """The answer ended: keep the turns for the context (a stopped answer's text too, as in a saved chat),
        and return the exchange for the browser."""
        token = self.router.session.client_token
        question = MsgView(role="user", content=self._asked, status="complete")
        answer = Message(
            role=MessageRole.assistant, content=for_storage(run.text), reasoning=for_storage(run.reasoning),
            model=run.model, status=run.status, error=run.error, error_detail=run.error_detail,
            completion_tokens=run.completion_tokens, duration_ms=run.duration_ms, conversation_id="", user_id=0,
        )  # fmt: skip
        turns = _temporary_turns.pop(token, [])  # re-inserted: the most recently used tab is the last
        turns += [("user", question.content), *([("assistant", answer.content)] if answer.content else [])]
        _temporary_turns[token] = turns[-MAX_TURNS:]
        while len(_temporary_turns) > MAX_TABS:
            del _temporary_turns[next(iter(_temporary_turns))]
        return [dataclasses.asdict(question), dataclasses.asdict(self._view(answer))]
