"""The step after an answer that keeps long-term memory: the chat's model proposes short facts about the user
(rubin_app.memory.extract), they are saved and noted on the answer ("Memory updated", with Undo). Off the answer's
path; a failure is only logged by the caller. A temporary chat never gets here; a user who switched memory off
costs one read."""

from __future__ import annotations

import re
from typing import Any

from rubin_app.knowledge import citations
from rubin_app.memory.extract import remember_from_chat
from rubin_app.memory.service import delete_memories
from rubin_app.models import Message
from rubin_app.services.context import Turn
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime

# A message that states something about its writer (the facts worth remembering: "my", "I live", "у меня"...); a
# question like "How do I...?" is not one. Other messages cost no extra model call.
_ABOUT_SELF = re.compile(
    r"\b(my|mine|myself|i'm|i am|i've|i have|i live|i work|i like|i love|i prefer|i hate|i use|call me|"
    r"мой|моя|моё|мое|мои|моего|моей|моих|моим|меня зовут|я живу|я работаю|я люблю|я предпочитаю|мне нравится|"
    r"у меня)\b",
    re.IGNORECASE,
)


def worth_asking(mode: str, question: str) -> bool:
    """Whether an exchange goes to the model for memories (MEMORY_AUTO)."""
    return mode == "always" or (mode == "personal" and _ABOUT_SELF.search(question) is not None)


async def remember(
    rt: Runtime, *, user_id: int, model: str, question: str, answer: str, conversation_id: str, message_id: int
) -> list[dict[str, object]]:
    """Propose, save and note the memories one exchange gives; the notes added (id, text)."""
    if not worth_asking(rt.settings.memory_auto, question):
        return []
    client, upstream = rt.router.client_for(model)
    turns = [Turn(role="user", content=question), Turn(role="assistant", content=answer)]
    added = await remember_from_chat(
        client=client, model=upstream, user_id=user_id, turns=turns, conversation_id=conversation_id,
        max_items=rt.settings.memory_max_items,
    )  # fmt: skip
    notes: list[dict[str, object]] = [{"id": m.id, "text": m.text} for m in added]
    if notes:
        async with session_scope() as session:
            await _note(session, user_id, message_id, notes)
    return notes


async def undo(*, user_id: int, message_id: int, memory_id: int) -> bool:
    """Forget a memory an answer added and drop its note from the answer; False if it was not the user's."""
    async with session_scope() as session:
        deleted = await delete_memories(session=session, user_id=user_id, memory_ids=[memory_id])
        message = await session.get(Message, message_id)
        if message is not None and message.user_id == user_id:
            sources, notes = citations.load(message.annotations)
            message.annotations = citations.dump(sources, [n for n in notes if n.get("id") != memory_id])
            session.add(message)
    return deleted > 0


async def _note(session: Any, user_id: int, message_id: int, notes: list[dict[str, object]]) -> None:
    """Add memory notes to the answer's annotations (its sources stay)."""
    message = await session.get(Message, message_id)
    if message is None or message.user_id != user_id:
        return
    sources, earlier = citations.load(message.annotations)
    message.annotations = citations.dump(sources, [*earlier, *notes])
    session.add(message)
