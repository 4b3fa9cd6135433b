"""Temporary chats (mixed into ChatState): a switch starts a chat that leaves nothing behind.

The exchanges live only in this tab's state; each answer is a run saved nowhere (services/temporary_chat.py)
that streams like any other (the same client-side variable, Stop through `_early`). Opening another chat,
New chat or a reload (`_open`) ends it: its exchanges are dropped and a running answer is stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import reflex as rx

from rubin_app.generation.run import Run
from rubin_app.models import Message, MessageRole
from rubin_app.services import temporary_chat
from rubin_app.services.runtime import get_runtime
from rubin_app.state.chat.common import PENDING_ANSWER, MsgView, _early, _following, push_js

log = logging.getLogger(__name__)


class TemporaryMixin(rx.State, mixin=True):
    """The temporary-chat switch and the follower of its answers."""

    temporary: bool = False
    _temporary_ids: int = 0  # the last (negative) id given to a temporary message: views need distinct ids

    @rx.event
    async def toggle_temporary(self):
        """Start a temporary chat (an empty one, at /), or leave it for a new normal chat."""
        if self.streaming_id:
            return rx.toast.warning(self._t("err_busy"))
        opened = await self._open("")  # drops what is shown (a temporary chat's exchanges are gone for good)
        self.temporary = not self.temporary
        return [
            rx.call_script("window.history.replaceState(null,'','/')"),
            rx.call_script('window.rubinHistory&&window.rubinHistory.reset(refs,"")'),  # older pages go too
            *(opened if isinstance(opened, list) else [opened]),
        ]

    def _temporary_history(self) -> list[tuple[str, str]]:
        """The temporary chat's earlier turns (role, text), for the model's context."""
        return [(m.role, m.content) for m in [*self.messages, *self.recent, *self.tail] if m.status == "complete"]

    def _temporary_view(self, run: Run) -> MsgView:
        """The finished answer as a message view (never saved: a message built in memory)."""
        self._temporary_ids -= 1
        answer = Message(
            id=-100 + self._temporary_ids, role=MessageRole.assistant, content=run.text, reasoning=run.reasoning,
            model=run.model, status=run.status, error=run.error, error_detail=run.error_detail,
            completion_tokens=run.completion_tokens, duration_ms=run.duration_ms, conversation_id="", user_id=0,
        )  # fmt: skip
        return self._view(answer)

    async def _follow_temporary(self, starting: asyncio.Task[Run]):
        """Stream a temporary answer into this tab; at the end it joins the tab's exchanges (and nothing else)."""
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
            fresh = True
            async for text, think in run.follow(0, rt.settings.stream_coalesce_ms / 1000):
                if not here():  # the tab left the temporary chat (another chat, New chat, reload): nobody reads it
                    await rt.generation.stop_run(run, wait=False)
                    return
                yield rx.call_script(push_js(text, think, reset=fresh))
                fresh = False
            async with self:
                if not here():
                    return
                self._end_temporary_answer(run)
        finally:
            if _early.get(token) is run:
                del _early[token]
        yield rx.call_script(push_js("", "", reset=True))

    def _end_temporary_answer(self, run: Run) -> None:
        """The answer ended: the exchange joins the tab's temporary chat (nowhere else)."""
        _following.pop(self.router.session.client_token, None)
        self._temporary_ids -= 1
        question = dataclasses.replace(self.pending[0], id=-100 + self._temporary_ids)
        self.recent, self.tail = self.recent + self.tail, [question, self._temporary_view(run)]
        self.pending, self.streaming_id = [], 0

    def _start_temporary(self, text: str, user_id: int) -> asyncio.Task[Run]:
        """Ask for a temporary answer (called holding the state, after the exchange is shown as pending)."""
        return asyncio.create_task(
            temporary_chat.send(
                get_runtime(), user_id=user_id, history=self._temporary_history(), text=text, model=self.model,
                ip=self._client_ip(),
            )
        )  # fmt: skip
