"""The account page's personalisation: custom instructions, and the memory list with its off switch.

Every handler re-checks the session and acts as the signed-in user (the services filter by them)."""

from __future__ import annotations

from typing import Any

import reflex as rx

from rubin_app.memory import instructions
from rubin_app.memory import service as memories
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState
from rubin_app.vault.state_seal import open_state, seal_state

CONTENT_VARS = ("about", "style", "memories", "undo_text")  # sealed at rest like the chat's (vault/state_seal.py)


class PersonalState(AuthState):
    """Instructions ("about me", "how to answer"), memories (id, text) and the switch."""

    about: str = ""
    style: str = ""
    instructions_notice: str = ""
    instructions_error: str = ""
    memory_on: bool = True
    memories: list[dict[str, str]] = []
    editing_id: str = ""  # the memory whose text is being edited
    memory_error: str = ""
    undo_text: str = ""  # the last deleted memory (Undo adds it back)
    loaded: bool = False  # the list shows once it is read (not the empty default first)

    def __getstate__(self) -> dict[str, Any]:
        return seal_state(type(self).get_full_name(), super().__getstate__(), CONTENT_VARS)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(open_state(type(self).get_full_name(), state))

    def _err(self, exc: InputError) -> str:
        return self._t(f"err_{exc.code}", **exc.params)

    @rx.event
    async def load(self) -> None:
        """Read the user's instructions, memories and switch."""
        principal = await self._principal()
        if principal is None:
            return
        async with session_scope(read_only=True) as session:
            self.about, self.style = await instructions.get_instructions(session=session, user_id=principal.user_id)
            self.memory_on = await instructions.memory_enabled(session=session, user_id=principal.user_id)
            rows = await memories.list_memories(session=session, user_id=principal.user_id)
        self.memories = [{"id": str(m.id), "text": m.text} for m in rows]
        self.instructions_notice = self.instructions_error = self.memory_error = ""
        self.editing_id = self.undo_text = ""
        self.loaded = True

    @rx.event
    async def save_instructions(self, form: dict) -> None:
        """Save both instructions (a refused one keeps what the user typed in the boxes)."""
        principal = await self._require()
        about, style = str(form.get("about", ""))[:5000], str(form.get("style", ""))[:5000]
        try:
            async with session_scope() as session:
                self.about, self.style = await instructions.set_instructions(
                    session=session, user_id=principal.user_id, about=about, style=style
                )
        except InputError as exc:
            self.instructions_error, self.instructions_notice = self._err(exc), ""
            return
        self.instructions_error, self.instructions_notice = "", self._t("saved")

    @rx.event
    async def set_memory_on(self, value: bool) -> None:
        """Switch memory on or off."""
        principal = await self._require()
        async with session_scope() as session:
            await instructions.set_memory_enabled(session=session, user_id=principal.user_id, enabled=bool(value))
        self.memory_on = bool(value)

    async def _reload(self, user_id: int) -> None:
        async with session_scope(read_only=True) as session:
            rows = await memories.list_memories(session=session, user_id=user_id)
        self.memories = [{"id": str(m.id), "text": m.text} for m in rows]

    @rx.event
    async def add(self, form: dict):
        """Remember a fact the user typed (the box is emptied only when it was saved)."""
        principal = await self._require()
        try:
            async with session_scope() as session:
                await memories.add_memory(
                    session=session, user_id=principal.user_id, text=str(form.get("text", ""))[:5000],
                    max_items=get_runtime().settings.memory_max_items,
                )  # fmt: skip
        except InputError as exc:
            self.memory_error = self._err(exc)
            return None
        self.memory_error, self.undo_text = "", ""
        await self._reload(principal.user_id)
        return rx.set_value("memory-new", "")

    @rx.event
    def edit(self, memory_id: str) -> None:
        """Open a memory's text for editing ("" closes it)."""
        self.editing_id, self.memory_error = memory_id, ""

    @rx.event
    async def save_edit(self, form: dict) -> None:
        """Save the edited text of the memory being edited."""
        principal = await self._require()
        try:
            async with session_scope() as session:
                await memories.update_memory(
                    session=session, user_id=principal.user_id, memory_id=int(self.editing_id or 0),
                    text=str(form.get("text", ""))[:5000],
                )  # fmt: skip
        except (InputError, ValueError) as exc:
            self.memory_error = self._err(exc) if isinstance(exc, InputError) else self._t("err_memory_not_found")
            return
        self.editing_id, self.memory_error = "", ""
        await self._reload(principal.user_id)

    @rx.event
    async def delete(self, memory_id: str) -> None:
        """Forget one memory (Undo brings it back)."""
        principal = await self._require()
        try:
            async with session_scope() as session:
                gone = await memories.delete_memory(
                    session=session, user_id=principal.user_id, memory_id=int(memory_id)
                )
        except (InputError, ValueError):
            self.memory_error = self._t("err_memory_not_found")
            return
        self.undo_text, self.editing_id, self.memory_error = gone.text, "", ""
        await self._reload(principal.user_id)

    @rx.event
    async def undo_delete(self) -> None:
        """Add the memory just deleted back."""
        principal = await self._require()
        text, self.undo_text = self.undo_text, ""
        if text:
            try:
                async with session_scope() as session:
                    await memories.add_memory(session=session, user_id=principal.user_id, text=text)
            except InputError as exc:
                self.memory_error = self._err(exc)
        await self._reload(principal.user_id)
