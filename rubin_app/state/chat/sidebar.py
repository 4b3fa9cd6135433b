"""The chat list in the sidebar (and the phone drawer): filter, rename, delete."""

from __future__ import annotations

import reflex as rx

from rubin_app.services import chats
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.chat.common import ChatItem


class SidebarMixin(rx.State, mixin=True):
    """Chat list, filter, rename and delete dialogs, drawer (mixed into ChatState)."""

    chats: list[ChatItem] = []
    chat_filter: str = ""
    rename_id: str = ""
    rename_text: str = ""
    delete_id: str = ""
    drawer_open: bool = False

    async def _load_chats(self) -> None:
        async with session_scope(read_only=True) as session:
            rows = await chats.list_conversations(
                session=session, user_id=await self._user_id(), query=self.chat_filter
            )
        items = [ChatItem(id=c.id, title=c.title or self._t("new_chat")) for c in rows]
        if items != self.chats:  # unchanged (most answers): no update, and the list is not drawn again
            self.chats = items

    @rx.event
    async def set_chat_filter(self, value: str) -> None:
        """Filter the sidebar by title."""
        self.chat_filter = value[:200]
        await self._load_chats()

    @rx.event
    def toggle_drawer(self) -> None:
        """Open or close the phone drawer."""
        self.drawer_open = not self.drawer_open

    @rx.event
    def set_drawer_open(self, value: bool) -> None:
        """Follow the drawer's own open/close."""
        self.drawer_open = bool(value)

    @rx.event
    def new_chat(self):
        """Start an empty chat."""
        self.drawer_open = False
        return rx.redirect("/")

    @rx.event
    def ask_rename(self, cid: str, title: str) -> None:
        """Open the rename dialog."""
        self.rename_id, self.rename_text = cid, title

    @rx.event
    def set_rename_text(self, value: str) -> None:
        """Edit the new title."""
        self.rename_text = value

    @rx.event
    def dialog_open_changed(self, is_open: bool) -> None:
        """Escape or a click outside closes a dialog."""
        if not is_open:
            self.close_dialogs()

    @rx.event
    def close_dialogs(self) -> None:
        """Close rename/delete/edit dialogs."""
        self.rename_id, self.delete_id, self.edit_id = "", "", 0

    @rx.event
    async def confirm_rename(self):
        """Save the new title."""
        try:
            async with session_scope() as session:
                conversation = await chats.update_conversation(
                    session=session,
                    user_id=await self._user_id(),
                    conversation_id=self.rename_id,
                    title=self.rename_text,
                )
        except InputError as exc:
            return rx.toast.error(self._error_text(exc.code))
        if conversation and conversation.id == self.conversation_id:
            self.title = conversation.title
        self.rename_id = ""
        await self._load_chats()
        return None

    @rx.event
    def ask_delete(self, cid: str) -> None:
        """Open the delete confirmation."""
        self.delete_id = cid

    @rx.event
    async def confirm_delete(self):
        """Delete the chat after confirmation."""
        cid, self.delete_id = self.delete_id, ""
        user_id = await self._user_id()
        if self.streaming_id and cid == self.conversation_id:
            await get_runtime().stop_answer(user_id=user_id, message_id=self.streaming_id)
        async with session_scope() as session:
            await chats.delete_conversation(session=session, user_id=user_id, conversation_id=cid)
        await self._load_chats()
        if cid == self.conversation_id:
            return rx.redirect("/")
        return None
