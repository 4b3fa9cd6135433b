"""Following an answer while it streams: the text goes to the tab as thin operations on its own websocket
(state/stream_channel.py), and the saved answer then shows without its text again (see the package docstring)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import reflex as rx

from rubin_app.generation.run import SAVE_FAILED, Run
from rubin_app.models import MessageStatus
from rubin_app.services import chat_flow, chats
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state import stream_channel
from rubin_app.state.chat.common import (
    COALESCE_PER_TAB_S,
    LATER_FACTOR,
    MAX_COALESCE_S,
    PENDING_ANSWER,
    SMOOTH_START_S,
    ChatItem,
    MemoryView,
    MsgView,
    _followers,
    _following,
    push_js,
)

log = logging.getLogger(__name__)

TITLE_WAIT_S = 120.0  # how long a finished answer's event waits for the model's title to show it in the tab


class FollowMixin(rx.State, mixin=True):
    """The follower that streams an answer to a tab, and what shows after it (mixed into ChatState)."""

    def _adopt(self, started: chat_flow.Started, saved: MsgView) -> list[MsgView]:
        """Show the saved exchange in the tail (the browser drops its pending one with this update: `UNPEND`); return
        the exchange that leaves the tail (the browser keeps it from now on: no list of the chat's messages is sent
        again after an answer)."""
        leaving = [] if not self.conversation_id else list(self.tail)
        if not self.conversation_id:
            self.conversation_id = started.conversation.id
        question, _answer = started.messages
        self.tail = [self._view(question), saved]
        self._asked = ""
        return leaving

    async def _push(self, ops: list[str]):
        """Send stream operations to this tab: straight to its socket, else through Reflex's events (returned)."""
        if ops and not await stream_channel.send(self.router.session.client_token, ops):
            return rx.call_script(stream_channel.ops_js(ops))
        return None

    @rx.event(background=True)
    async def follow(self, message_id: int, text_offset: int = 0, think_offset: int = 0):
        """Push new text of a live answer to this tab until it ends, then show the saved message."""
        async for event in self._follow(message_id, text_offset, think_offset):
            yield event

    async def _follow(self, *args, **kwargs):
        """`_stream` as this tab's only follower: a newer one (a reconnect, a reopened chat) ends this one."""
        token, me = self.router.session.client_token, object()
        _followers[token] = me
        try:
            async for event in self._stream(me, *args, **kwargs):
                yield event
        finally:
            if _followers.get(token) is me:
                del _followers[token]

    async def _stream(
        self,
        me: object,
        message_id: int,
        text_offset: int,
        think_offset: int,
        run: Run | None = None,
        saving: asyncio.Task | None = None,
    ):
        """The follower loop (shared by `follow` and `send`; `me` is this follower: see `_follow`).

        The offsets say how much of the answer (text, reasoning) the tab already shows: the run may have
        produced more before this event starts, and that text must still reach the tab. `start_answer`
        passes the run of a message still being saved (`message_id` PENDING_ANSWER) and the `saving` task.
        """
        rt = get_runtime()
        token = self.router.session.client_token
        user_id = await self._user_id()
        run = run or rt.generation.get(user_id=user_id, message_id=message_id)
        started: chat_flow.Started | None = None
        relayed = False  # some text went through Reflex's events: the tab may have it out of order
        if run is not None:
            base, began = rt.settings.stream_coalesce_ms / 1000, time.monotonic()

            def interval() -> float:
                # The first half second as it comes, then less often while the reader reads (SMOOTH_START_S); under
                # load, fewer and bigger pieces still (a push costs the worker the same whatever its size).
                wait = base if time.monotonic() - began < SMOOTH_START_S else base * LATER_FACTOR
                return min(MAX_COALESCE_S, max(wait, len(_following) * COALESCE_PER_TAB_S))

            if saving is not None:
                saving.add_done_callback(lambda _task: run.notify())  # wakes the loop below
            pieces = run.follow(text_offset, interval, reasoning_offset=think_offset, wakeups=saving is not None)
            fresh = text_offset == 0 and think_offset == 0  # the first piece replaces whatever the tab shows
            async for text, think in pieces:
                if _followers.get(token) is not me:
                    return  # a newer follower streams to this tab
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
                    ops = stream_channel.pieces(text, think, text_offset, think_offset, reset=fresh)
                    if (event := await self._push(ops)) is not None:
                        relayed = True
                        yield event
                    text_offset, think_offset, fresh = text_offset + len(text), think_offset + len(think), False
            if run.handover:
                # This process is stopping and hands the answer over: it stays `streaming`, another worker continues
                # it. The tab is left as it is (not told the answer ended): its socket closes next, and the page,
                # reconnected, follows the answer where it goes on (on_load re-attaches to it).
                return
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
            async for event in self._follow_elsewhere(me, user_id, message_id, text_offset, think_offset):
                yield event
        streamed_all = not relayed and run is not None and text_offset == len(run.text)
        async for event in self._show_saved(me, user_id, message_id, run, started, streamed_all):
            yield event

    async def _show_saved(
        self, me: object, user_id: int, message_id: int, run: Run | None, started: chat_flow.Started | None,
        streamed_all: bool,
    ):  # fmt: skip
        """The answer ended: show it as saved (without its text when the tab has all of it), then what follows."""
        token = self.router.session.client_token
        async with session_scope(read_only=True) as session:
            saved = await chats.get_message(session=session, user_id=user_id, message_id=message_id)
        if run is not None and run.error == SAVE_FAILED and saved is not None:
            # The database refused the final save (maybe the mark too): show what the run has, and say so.
            saved = saved.model_copy(update={"content": run.text, "status": run.status, "error": run.error})
        # The tab has the whole text when this follower streamed all of it: the saved answer then goes without it.
        kept = streamed_all and run is not None and saved is not None and saved.content == run.text
        async with self:
            if _followers.get(token) is not me or _following.get(token) != message_id:
                return
            _following.pop(token, None)
            view = self._view(saved) if saved is not None else None
            ops = [stream_channel.keep_op(message_id, len(saved.content))] if kept and saved is not None else []
            if view is not None and ops:
                view = dataclasses.replace(view, content="", kept=True)
            leaving: list[MsgView] = []
            if started is not None:
                leaving = self._adopt(started, view or self._view(started.messages[1]))
            elif view is not None:
                self.tail = [view if v.id == message_id else v for v in self.tail]
            if leaving:
                ops.append(stream_channel.fold_op([v.id for v in leaving]))
            if started is not None:
                ops.append(stream_channel.UNPEND)  # the saved exchange takes the pending one's place
            # Sent before this update, applied by the browser together with it (assets/stream.js).
            late = await self._push(ops)
            self.streaming_id = 0
            await self._load_chats()
            title = next((c.title for c in self.chats if c.id == self.conversation_id), self.title)
            if title != self.title:
                self.title = title
        if late is not None:  # the socket is on another worker: through Reflex, after the update
            yield late
        if not kept:
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

    async def _follow_elsewhere(self, me: object, user_id: int, message_id: int, text_offset: int, think_offset: int):
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
                if _followers.get(token) is not me or _following.get(token) != message_id:
                    return
                ops = stream_channel.pieces(text, think, text_offset, think_offset)
                text_offset, think_offset, heard = text_offset + len(text), think_offset + len(think), True
                if (event := await self._push(ops)) is not None:
                    yield event
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
