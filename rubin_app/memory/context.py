"""The personal block of a chat's system prompt: the user's custom instructions and relevant memories."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.memory.instructions import get_personalisation
from rubin_app.memory.service import Embedder, relevant_memories

DEFAULT_BUDGET = 400
ABOUT = "What the user wants you to know about them:"
STYLE = "How the user wants you to answer:"
MEMORIES = "What you remember about the user from earlier chats (use it only where it helps):"


def render(about: str, style: str, memories: list[str]) -> str:
    """The block's text ("" when there is nothing to say)."""
    parts = []
    if about.strip():
        parts.append(f"{ABOUT}\n{about.strip()}")
    if style.strip():
        parts.append(f"{STYLE}\n{style.strip()}")
    if memories:
        parts.append(MEMORIES + "\n" + "\n".join(f"- {m}" for m in memories))
    return "\n\n".join(parts)


async def system_context(
    *, session: AsyncSession, user_id: int, query: str, embedder: Embedder | None, temporary: bool,
    budget_tokens: int = DEFAULT_BUDGET,
) -> str:  # fmt: skip
    """Instructions plus the memories most relevant to `query`, ready to append to the system prompt.

    A temporary chat uses no memory (its instructions still apply, as the user's standing settings); with memory
    switched off, none is used either."""
    about, style, remembers = await get_personalisation(session=session, user_id=user_id)
    memories: list[str] = []
    if not temporary and budget_tokens > 0 and remembers:
        memories = await relevant_memories(
            session=session, user_id=user_id, query=query, embedder=embedder, budget_tokens=budget_tokens
        )
    return render(about, style, memories)
