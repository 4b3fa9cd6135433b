"""The step after an answer that keeps long-term memory: the chat's model proposes short facts about the user,
they are saved and noted on the answer ("Memory updated", with Undo). Off the answer's path; a failure is only
logged. A temporary chat never gets here, nor a user who switched memory off."""

from __future__ import annotations

import logging

from rubin_app.knowledge import citations
from rubin_app.models import Message
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime

log = logging.getLogger(__name__)


async def remember(
    rt: Runtime, *, user_id: int, model: str, question: str, answer: str, conversation_id: str, message_id: int
) -> list[dict[str, object]]:
    """Propose, save and note the memories one exchange gives; the notes added (id, text)."""
    from rubin_app.memory import service as memory
    from rubin_app.memory.extract import propose_memories

    async with session_scope(read_only=True) as session:
        if not await memory.memory_enabled(session=session, user_id=user_id):
            return []
        known = [m.text for m in await memory.list_memories(session=session, user_id=user_id)]
    client, upstream = rt.client_for(model)
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    texts = await propose_memories(client=client, model=upstream, turns=turns, known=known)
    if not texts:
        return []
    async with session_scope() as session:
        notes: list[dict[str, object]] = []
        for text in texts:
            saved = await memory.add_memory(
                session=session, user_id=user_id, text=text, source_conversation_id=conversation_id,
                embedder=rt.embedder,
            )  # fmt: skip
            notes.append({"id": saved.id, "text": saved.text})
        await _note(session, user_id, message_id, notes)
    return notes


async def undo(*, user_id: int, message_id: int, memory_id: int) -> bool:
    """Forget a memory an answer added and drop its note from the answer; False if it was not the user's."""
    from rubin_app.memory import service as memory

    async with session_scope() as session:
        deleted = await memory.delete_memory(session=session, user_id=user_id, memory_id=memory_id)
        message = await session.get(Message, message_id)
        if message is not None and message.user_id == user_id:
            sources, notes = citations.load(message.annotations)
            message.annotations = citations.dump(sources, [n for n in notes if n.get("id") != memory_id])
            session.add(message)
    return bool(deleted)


async def _note(session: object, user_id: int, message_id: int, notes: list[dict[str, object]]) -> None:
    """Add memory notes to the answer's annotations (its sources stay)."""
    message = await session.get(Message, message_id)  # type: ignore[attr-defined]
    if message is None or message.user_id != user_id:
        return
    sources, earlier = citations.load(message.annotations)
    message.annotations = citations.dump(sources, [*earlier, *notes])
    session.add(message)  # type: ignore[attr-defined]


__all__ = ["remember", "undo"]
