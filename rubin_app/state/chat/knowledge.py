"""The chat's knowledge (mixed into ChatState): which bases the next questions are answered from (the "#"
picker), and the cited passage the reader opened from an answer's sources."""

from __future__ import annotations

import dataclasses

import reflex as rx

from rubin_app.knowledge.passages import get_passage, readable_bases
from rubin_app.services import augment
from rubin_app.services.db import session_scope


@dataclasses.dataclass
class BaseView:
    """A base in the picker."""

    id: int = 0
    name: str = ""
    shared: bool = False
    chosen: bool = False


class KnowledgeMixin(rx.State, mixin=True):
    """The "#" picker's bases and choice, and the passage dialog."""

    bases: list[BaseView] = []
    knowledge_all: bool = False  # answer from every base the user can read
    passage_open: bool = False
    passage_title: str = ""
    passage_before: str = ""
    passage_text: str = ""
    passage_after: str = ""

    @rx.var
    def knowledge_chosen(self) -> list[BaseView]:
        """The bases attached to the chat (chips above the composer)."""
        return [b for b in self.bases if b.chosen]

    def knowledge_choice(self) -> list[int] | str:
        """What the next question is answered from."""
        return augment.ALL if self.knowledge_all else [b.id for b in self.bases if b.chosen]

    async def _load_bases(self, user_id: int, stored: str = "") -> None:
        """The bases the user can attach, with the chat's stored choice ticked."""
        async with session_scope(read_only=True) as session:
            options = await readable_bases(session=session, user_id=user_id)
        self.bases = [BaseView(id=o.id, name=o.name, shared=o.shared) for o in options]
        self._show_choice(stored)

    def _show_choice(self, stored: str) -> None:
        """Tick the bases a chat was answered from (another chat opened)."""
        choice = augment.parse_knowledge(stored)
        self.knowledge_all = choice == augment.ALL
        chosen = set(choice) if isinstance(choice, list) else set()
        self.bases = [dataclasses.replace(b, chosen=b.id in chosen) for b in self.bases]

    @rx.event
    def toggle_base(self, base_id: int) -> None:
        """Attach or detach a base."""
        self.knowledge_all = False
        self.bases = [dataclasses.replace(b, chosen=not b.chosen) if b.id == base_id else b for b in self.bases]

    @rx.event
    def toggle_all_knowledge(self) -> None:
        """Answer from all the user's knowledge (or stop)."""
        self.knowledge_all = not self.knowledge_all
        self.bases = [dataclasses.replace(b, chosen=False) for b in self.bases]

    @rx.event
    async def open_passage(self, chunk_id: int, file_id: int, title: str, text: str):
        """Show a cited passage highlighted between its neighbours (the stored text if the file is gone)."""
        user_id = (await self._require()).user_id  # type: ignore[attr-defined]
        async with session_scope(read_only=True) as session:
            view = await get_passage(session=session, user_id=user_id, chunk_id=chunk_id, file_id=file_id)
        self.passage_title = title
        if view is None:
            self.passage_before, self.passage_text, self.passage_after = "", text, ""
        else:
            self.passage_before, self.passage_text, self.passage_after = view.before, view.text, view.after
        self.passage_open = True

    @rx.event
    def set_passage_open(self, value: bool) -> None:
        """Close (or open) the passage dialog."""
        self.passage_open = value

    @rx.event
    async def undo_memory(self, message_id: int, memory_id: int):
        """Forget a memory an answer added; its note goes from the answer (wherever the answer is shown)."""
        from rubin_app.services import memory_step

        user_id = (await self._require()).user_id  # type: ignore[attr-defined]
        if not await memory_step.undo(user_id=user_id, message_id=message_id, memory_id=memory_id):
            return rx.toast.warning(self._t("err_memory_not_found"))  # type: ignore[attr-defined]
        for name in ("messages", "tail"):  # (older pages and finished exchanges are the browser's copies: a reload)
            views = getattr(self, name)
            if any(v.id == message_id for v in views):
                setattr(self, name, [_without(v, memory_id) if v.id == message_id else v for v in views])
        return rx.toast(self._t("memory_undone"), duration=2000)  # type: ignore[attr-defined]


def _without(view, memory_id: int):  # type: ignore[no-untyped-def]
    """A message view without one memory note."""
    return dataclasses.replace(view, memories=[m for m in view.memories if m.id != memory_id])
