"""Sending, stopping, regenerating and editing (the follower that streams the answer: follow.py)."""

from __future__ import annotations

import asyncio
import logging

import reflex as rx

from rubin_app.generation.run import Run
from rubin_app.llm.client import LLMError
from rubin_app.services import chat_flow, chats, send_keys
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.chat.common import (
    PENDING_ANSWER,
    _early,
    _following,
    events_of,
    opened_js,
    push_js,
    unpend_js,
)

log = logging.getLogger(__name__)


class AnswersMixin(rx.State, mixin=True):
    """Send, stop, regenerate, edit and resend (mixed into ChatState; the follower is FollowMixin's)."""

    @rx.event(background=True)
    async def send(self, form: dict):
        """Send the composer's text; on bad input the text stays in the box.

        One background event asks LocalAI and streams the answer: no chained event between Enter and the first
        token. The browser shows the exchange as pending from the moment it sends (assets/stream.js); it is saved
        while LocalAI works on its first token and shown for real at the end.
        """
        text = str(form.get("text", ""))
        key = send_keys.clean(form.get("key"))  # the page's id for this send (assets/stream.js)
        if key is not None and form.get("again") == "1":  # sent again after a reconnect: maybe saved before
            async with self:
                user_id = await self._user_id()
            async with session_scope(read_only=True) as session:
                saved_in = await send_keys.conversation_of(session, user_id, key)
            if saved_in is not None:
                async for event in self._already_sent(saved_in, text):
                    yield event
                return
        token = self.router.session.client_token
        # From the moment the event arrives: a worker told to stop waits for this send to be saved (hand-over).
        release = get_runtime().generation.arrive()
        try:
            async with self:
                if self.draft_error:
                    self.draft_error = ""
                busy = self._t("err_busy") if self.streaming_id else ""
                refused = bool(busy)
                if not refused:
                    try:
                        chats.check_message_text(text, get_runtime().settings.max_message_chars)
                    except InputError as exc:
                        self.draft_error = self._t(f"err_{exc.code}", **exc.params)
                        refused = True
                if not refused:
                    saving, temporary, run_started = await self._start_sending(text, key)
        finally:
            release()
        if refused:  # the page emptied the box when it sent (reset_on_submit): the refused text goes back
            if busy:
                yield rx.toast.warning(busy)
            yield rx.call_script(unpend_js(text))
            yield rx.set_value("composer", text)
            return
        if temporary:
            async for event in self._follow_temporary(saving):
                yield event
            return
        await asyncio.wait([saving, run_started], return_when=asyncio.FIRST_COMPLETED)
        if not run_started.done():  # refused before LocalAI was asked (limits, model, input)
            async for event in self._send_failed(saving):
                yield event
            return
        if _following.get(token) != PENDING_ANSWER:
            return  # the tab moved to another chat meanwhile; the answer is saved anyway
        run = _early[token] = run_started.result()
        try:
            async for event in self._follow(PENDING_ANSWER, 0, 0, run=run, saving=saving):
                yield event
        finally:
            if _early.get(token) is run:
                del _early[token]

    async def _start_sending(self, text: str, key: str | None) -> tuple[asyncio.Task, bool, asyncio.Future[Run]]:
        """Start saving the exchange (the browser shows it as pending) and asking for the answer (called holding the
        state)."""
        token = self.router.session.client_token
        self._asked = text
        self.streaming_id = PENDING_ANSWER
        _following[token] = PENDING_ANSWER
        run_started: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        if self.temporary:  # a temporary chat: its answer is saved nowhere (state/chat/temporary.py)
            return self._start_temporary(text, await self._user_id()), True, run_started
        saved = get_runtime().generation.arrive()  # and then until its rows are saved (or it failed)
        saving = asyncio.create_task(
            chat_flow.send_message(
                get_runtime(),
                user_id=await self._user_id(),
                conversation_id=self.conversation_id or None,
                text=text,
                model=self.model,
                ip=self._client_ip(),
                on_run=run_started.set_result,
                knowledge=self.knowledge_choice(),
                send_key=key,
            )
        )
        saving.add_done_callback(lambda _task: saved())
        return saving, False, run_started

    async def _send_failed(self, saving: asyncio.Task):
        """The message could not be sent or saved: say why and put the text back in the composer."""
        exc = saving.exception() if saving.done() and not saving.cancelled() else LLMError("internal")
        if isinstance(exc, send_keys.AlreadySent):  # a repeated send met the first one being saved elsewhere
            async with self:
                text, self._asked, self.streaming_id = self._asked, "", 0
                _following.pop(self.router.session.client_token, None)
            async for event in self._already_sent(exc.conversation_id, text):
                yield event
            return
        if not isinstance(exc, (InputError, LLMError)):
            log.error("sending failed", exc_info=exc)
            exc = LLMError("internal")
        token = self.router.session.client_token
        async with self:
            text, self._asked, self.streaming_id = self._asked, "", 0
            _following.pop(token, None)
            if isinstance(exc, InputError):
                self.draft_error = self._t(f"err_{exc.code}", **exc.params)
            else:
                self.draft_error = self._error_text(exc.code, exc.detail)
        yield rx.call_script(f"{push_js('', '', reset=True)};{unpend_js()}")  # the pending exchange goes too
        yield rx.set_value("composer", text)  # nothing typed is lost

    async def _already_sent(self, conversation_id: str, text: str):
        """The page sent a question again (after a reconnect) that is saved already: its pending copy goes, and the
        chat the question is in opens (following its answer, wherever it is being written)."""
        yield rx.call_script(unpend_js(text))
        async with self:
            cid = conversation_id or self.conversation_id
            moved = cid != self.conversation_id
            opened = await self._open(cid)  # type: ignore[attr-defined]
        if moved:
            yield rx.call_script(f"window.history.replaceState(null,'','/c/{cid}')")
        yield rx.call_script(opened_js(cid))
        for event in events_of(opened):
            yield event

    def _begin(self, started: chat_flow.Started) -> list:
        """Show the new exchange and start following the answer."""
        question, answer = started.messages
        self.tail = [self._view(question), self._view(answer)]
        self.streaming_id = answer.id or 0
        _following[self.router.session.client_token] = self.streaming_id
        # `type(self)`: the ChatState class (a foreground handler's self is the state itself, not a proxy).
        return [rx.call_script(push_js("", "", reset=True)), type(self).follow(self.streaming_id, 0, 0)]

    @rx.event
    async def stop(self) -> None:
        """Stop the answer; what was streamed is kept."""
        token = self.router.session.client_token
        message_id = self.streaming_id if self.streaming_id > 0 else _following.get(token, 0)
        user_id = await self._user_id()
        if message_id > 0:
            await get_runtime().stop_answer(user_id=user_id, message_id=message_id)  # on any worker
        elif (run := _early.get(token)) is not None and run.user_id == user_id:
            await get_runtime().generation.stop_run(run, wait=False)  # saved as interrupted once its row is

    @rx.event
    async def regenerate(self):
        """Answer the last question again (also Retry)."""
        if self.streaming_id or not self.conversation_id:
            return None
        try:
            started = await chat_flow.regenerate(
                get_runtime(), user_id=await self._user_id(), conversation_id=self.conversation_id, model=self.model,
                ip=self._client_ip(),
            )  # fmt: skip
        except InputError as exc:
            return rx.toast.error(self._t(f"err_{exc.code}", **exc.params))
        except LLMError as exc:
            return rx.toast.error(self._error_text(exc.code))
        return self._begin(started)

    @rx.event
    def start_edit(self, message_id: int, text: str) -> None:
        """Open the editor on the last user message."""
        self.edit_id, self.edit_text = message_id, text

    @rx.event
    def set_edit_text(self, value: str) -> None:
        """Type in the editor."""
        self.edit_text = value

    @rx.event
    async def save_edit(self):
        """Resend the edited message and answer it anew."""
        if self.streaming_id:
            return rx.toast.warning(self._t("err_busy"))
        try:
            started = await chat_flow.edit_and_resend(
                get_runtime(),
                user_id=await self._user_id(),
                conversation_id=self.conversation_id,
                message_id=self.edit_id,
                text=self.edit_text,
                model=self.model,
                ip=self._client_ip(),
            )
        except InputError as exc:
            return rx.toast.error(self._t(f"err_{exc.code}", **exc.params))
        except LLMError as exc:
            return rx.toast.error(self._error_text(exc.code))
        self.edit_id = 0
        return self._begin(started)
