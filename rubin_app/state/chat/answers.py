"""Sending, regenerating and editing, and following an answer while it streams (see the package docstring)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import reflex as rx

from rubin_app.generation.run import SAVE_FAILED, Run
from rubin_app.llm.client import LLMError
from rubin_app.models import Message, MessageStatus
from rubin_app.services import chat_flow, chats
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.chat.common import (
    COALESCE_PER_TAB_S,
    MAX_COALESCE_S,
    PENDING_ANSWER,
    PENDING_QUESTION,
    RECENT_MAX,
    ChatItem,
    MemoryView,
    MsgView,
    _early,
    _following,
    push_js,
)

log = logging.getLogger(__name__)

TITLE_WAIT_S = 120.0  # how long a finished answer's event waits for the model's title to show it in the tab


class AnswersMixin(rx.State, mixin=True):
    """Send, stop, regenerate, edit and resend, and the follower that streams an answer (mixed into ChatState)."""

    @rx.event(background=True)
    async def send(self, form: dict):
        """Send the composer's text; on bad input the text stays in the box.

        One background event shows the exchange (as `pending`), asks LocalAI and streams the answer: no
        chained event between Enter and the first token. The exchange is saved while LocalAI works on its
        first token and shown for real at the end.
        """
        text = str(form.get("text", ""))
        token = self.router.session.client_token
        async with self:
            if self.draft_error:
                self.draft_error = ""
            if self.streaming_id:
                yield rx.toast.warning(self._t("err_busy"))
                return
            try:
                chats.check_message_text(text, get_runtime().settings.max_message_chars)
            except InputError as exc:
                self.draft_error = self._t(f"err_{exc.code}", **exc.params)
                return
            self.pending = [
                MsgView(id=PENDING_QUESTION, role="user", content=text, status="complete"),
                MsgView(id=PENDING_ANSWER, role="assistant", status="streaming", model=self.model),
            ]
            self.streaming_id = PENDING_ANSWER
            _following[token] = PENDING_ANSWER
            run_started: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
            if self.temporary:  # a temporary chat: its answer is saved nowhere (state/chat/temporary.py)
                saving = self._start_temporary(text, await self._user_id())
                temporary = True
            else:
                temporary = False
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
                    )
                )
        yield rx.set_value("composer", "")  # the streamed text is empty already (reset when the last one ended)
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

    async def _send_failed(self, saving: asyncio.Task):
        """The message could not be sent or saved: say why and put the text back in the composer."""
        exc = saving.exception() if saving.done() and not saving.cancelled() else LLMError("internal")
        if not isinstance(exc, (InputError, LLMError)):
            log.error("sending failed", exc_info=exc)
            exc = LLMError("internal")
        token = self.router.session.client_token
        async with self:
            text = self.pending[0].content if self.pending else ""
            self.pending, self.streaming_id = [], 0
            _following.pop(token, None)
            if isinstance(exc, InputError):
                self.draft_error = self._t(f"err_{exc.code}", **exc.params)
            else:
                self.draft_error = self._error_text(exc.code, exc.detail)
        yield rx.call_script(push_js("", "", reset=True))
        yield rx.set_value("composer", text)  # nothing typed is lost

    def _adopt(self, started: chat_flow.Started, saved: Message | None) -> None:
        """Replace the pending exchange by the saved one (one state update, after the answer)."""
        if not self.conversation_id:
            self.conversation_id = started.conversation.id
        elif len(self.recent) < RECENT_MAX:
            self.recent = self.recent + self.tail
        else:  # fold into the history now and then: amortised, not per answer
            self.messages, self.recent = self.messages + self.recent + self.tail, []
        question, answer = started.messages
        self.tail = [self._view(question), self._view(saved or answer)]
        self.pending = []

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

    # ---- following a live answer ---------------------------------------------------------------
    @rx.event(background=True)
    async def follow(self, message_id: int, text_offset: int = 0, think_offset: int = 0):
        """Push new text of a live answer to this tab until it ends, then show the saved message."""
        async for event in self._follow(message_id, text_offset, think_offset):
            yield event

    async def _follow(
        self,
        message_id: int,
        text_offset: int,
        think_offset: int,
        run: Run | None = None,
        saving: asyncio.Task | None = None,
    ):
        """The follower loop (shared by `follow` and `start_answer`).

        The offsets say how much of the answer (text, reasoning) the tab already shows: the run may have
        produced more before this event starts, and that text must still reach the tab. `start_answer`
        passes the run of a message still being saved (`message_id` PENDING_ANSWER) and the `saving` task.
        """
        rt = get_runtime()
        token = self.router.session.client_token
        user_id = await self._user_id()
        run = run or rt.generation.get(user_id=user_id, message_id=message_id)
        started: chat_flow.Started | None = None
        if run is not None:
            base = rt.settings.stream_coalesce_ms / 1000

            def interval() -> float:  # under load, fewer and bigger pieces: a push costs the worker the same
                return min(MAX_COALESCE_S, max(base, len(_following) * COALESCE_PER_TAB_S))

            if saving is not None:
                saving.add_done_callback(lambda _task: run.notify())  # wakes the loop below
            pieces = run.follow(text_offset, interval, reasoning_offset=think_offset, wakeups=saving is not None)
            fresh = text_offset == 0 and think_offset == 0  # the first piece replaces whatever the tab shows
            async for text, think in pieces:
                if _following.get(token) not in (message_id, run.message_id or message_id):
                    return
                if started is None and saving is not None and saving.done():
                    if saving.cancelled() or saving.exception() is not None:
                        break  # not saved: the run is discarded
                    started = saving.result()
                    message_id = run.message_id
                    if _following.get(token) == PENDING_ANSWER:
                        _following[token] = message_id  # Stop works from here on
                    if not self.conversation_id:
                        yield rx.call_script(f"window.history.replaceState(null,'','/c/{started.conversation.id}')")
                        await self._list_new_chat(started)
                if text or think:
                    yield rx.call_script(push_js(text, think, reset=fresh))
                    fresh = False
            if saving is not None:
                await asyncio.wait([saving])
                if saving.cancelled() or saving.exception() is not None:
                    async for event in self._send_failed(saving):
                        yield event
                    return
                if started is None:
                    started, message_id = saving.result(), run.message_id
                    if _following.get(token) == PENDING_ANSWER:
                        _following[token] = message_id
        else:
            async for event in self._follow_elsewhere(user_id, message_id, text_offset, think_offset):
                yield event
        async with session_scope(read_only=True) as session:
            saved = await chats.get_message(session=session, user_id=user_id, message_id=message_id)
        if run is not None and run.error == SAVE_FAILED and saved is not None:
            # The database refused the final save (maybe the mark too): show what the run has, and say so.
            saved = saved.model_copy(update={"content": run.text, "status": run.status, "error": run.error})
        async with self:
            if _following.get(token) != message_id:
                return
            _following.pop(token, None)
            if started is not None:
                self._adopt(started, saved)
            elif saved is not None:
                self.tail = [self._view(saved) if v.id == message_id else v for v in self.tail]
            self.streaming_id = 0
            await self._load_chats()
            title = next((c.title for c in self.chats if c.id == self.conversation_id), self.title)
            if title != self.title:
                self.title = title
        yield rx.call_script(push_js("", "", reset=True))  # the saved answer shows now; ready for the next one
        if self.conversation_id and not self.streaming_id:
            yield self.__class__.watch(self.conversation_id)  # answers started elsewhere show here too (watch.py)
        after = []  # the memories the answer added and the model's title arrive later, each on its own
        if started is not None and started.memory is not None:
            after.append(self._show_memories(message_id, started.memory))
        if started is not None and started.title is not None:
            after.append(self._show_title(started.conversation.id, started.title))
        await asyncio.gather(*after)

    async def _show_memories(self, message_id: int, task: asyncio.Task[list[dict[str, object]]]) -> None:
        """The memories the answer added (saved after it): note them under it, with Undo."""
        await asyncio.wait([task], timeout=TITLE_WAIT_S)
        if not task.done() or task.cancelled() or task.exception() is not None or not task.result():
            return
        notes = [MemoryView(id=int(str(n.get("id", 0))), text=str(n.get("text", ""))) for n in task.result()]
        async with self:
            if any(v.id == message_id for v in self.tail):
                self.tail = [dataclasses.replace(v, memories=notes) if v.id == message_id else v for v in self.tail]

    async def _follow_elsewhere(self, user_id: int, message_id: int, text_offset: int, think_offset: int):
        """An answer generated by another worker (or a process that died): follow it live through Redis when the
        message is this user's, until its saved state is final. Its worker may die meanwhile: another one continues
        it from where the stream was and publishes it again from the start (services/recovery.py); the tab goes on
        reading from what it shows. Ends early when the tab moves on."""
        rt, token = get_runtime(), self.router.session.client_token
        async with session_scope(read_only=True) as session:
            mine = await chats.get_message(session=session, user_id=user_id, message_id=message_id)
        while mine is not None and mine.status == MessageStatus.streaming:
            heard = False
            async for text, think in rt.relay.follow(message_id, text_offset, think_offset):
                if _following.get(token) != message_id:
                    return
                text_offset, think_offset, heard = text_offset + len(text), think_offset + len(think), True
                yield rx.call_script(push_js(text, think))
            if _following.get(token) != message_id:
                return
            if not heard:
                await asyncio.sleep(1.0)
            async with session_scope(read_only=True) as session:
                mine = await chats.get_message(session=session, user_id=user_id, message_id=message_id)

    async def _list_new_chat(self, started: chat_flow.Started) -> None:
        """A new chat is saved: list it at once, under its provisional title (the answer is still coming)."""
        conversation = started.conversation
        async with self:
            if self.chat_filter or any(c.id == conversation.id for c in self.chats):
                return  # a filtered list is read again when the answer ends
            self.chats = [ChatItem(id=conversation.id, title=conversation.title or self._t("new_chat")), *self.chats]

    async def _show_title(self, conversation_id: str, title_task: asyncio.Task[str | None]) -> None:
        """The model's title of a new chat arrived (long after its answer, maybe): show it in this tab.

        The tab is free meanwhile (this event holds no lock while it waits); a tab that moved to another chat
        or account changes only what it still shows of this one.
        """
        await asyncio.wait([title_task], timeout=TITLE_WAIT_S)
        if not title_task.done() or title_task.cancelled() or title_task.exception() is not None:
            return
        if not (title := title_task.result()):
            return
        async with self:
            if any(c.id == conversation_id and c.title != title for c in self.chats):
                self.chats = [ChatItem(id=c.id, title=title) if c.id == conversation_id else c for c in self.chats]
            if self.conversation_id == conversation_id and self.title != title:
                self.title = title
