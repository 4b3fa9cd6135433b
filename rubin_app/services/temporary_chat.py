"""A temporary chat's answer: the stateless run the API uses (no answer writer), asked from the chat UI.

Nothing is saved: no conversation or message rows, no response-cache entry (no cache key: neither read nor
written), no webhook event (those come from the answer writer's final save), no title, nothing relayed
through Redis. The user's limits and quota apply, and usage is counted (a row without content).
"""

from __future__ import annotations

from collections.abc import Sequence

from rubin_app.generation.run import Run
from rubin_app.llm.types import ChatRequest
from rubin_app.services import augment, chat_flow, chats
from rubin_app.services.context import Turn
from rubin_app.services.runtime import Runtime

ROLES = ("user", "assistant")


def request_for(rt: Runtime, prepared: augment.Prepared, history: Sequence[tuple[str, str]], text: str) -> ChatRequest:
    """The request: the earlier turns the tab holds (role, text) and the new question, within the budget."""
    turns = [Turn(role=role, content=content) for role, content in history if role in ROLES and content.strip()]
    return prepared.request([*turns, Turn(role="user", content=text)])


async def send(
    rt: Runtime, *, user_id: int, history: Sequence[tuple[str, str]], text: str, model: str, ip: str = ""
) -> Run:
    """Check the text, the model and the user's limits, then start the answer (saved nowhere; no memory, no
    knowledge, not even an assistant's: the user's instructions and an assistant's prompt still apply)."""
    text = chats.check_message_text(text, rt.settings.max_message_chars)
    prepared = await chat_flow.prepare(rt, user_id=user_id, model=model, question=text, knowledge=[], temporary=True)
    slot = await rt.admission.admit(user_id, ip)
    try:
        request = request_for(rt, prepared, history, text)
        return rt.generation.start(request, user_id=user_id, sinks=rt.sinks(None), slot=slot, source="ui")
    except BaseException:
        if slot:
            await rt.limiter.release(user_id, slot)
        raise
