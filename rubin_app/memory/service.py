"""Long-term memories: a user's list of short facts (see, add, edit, delete, switch off), and the ones most
relevant to a question within a token budget — by embedding similarity when an embedder is given, else by word
overlap. Every query filters by the acting user. Nothing here commits: the caller's session scope does.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from typing import Literal, Protocol

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.core.clock import utcnow
from rubin_app.memory.instructions import memory_enabled
from rubin_app.memory.models import Memory
from rubin_app.services import text as text_rules
from rubin_app.services.chats import InputError
from rubin_app.services.context import estimate_tokens

log = logging.getLogger(__name__)

MAX_TEXT = 500
DEFAULT_MAX_ITEMS = 200
_WORD = re.compile(r"\w+", re.UNICODE)


class Embedder(Protocol):
    """What relevance needs of an embedding client (rubin_app.llm.embeddings.Embedder fits)."""

    async def embed(
        self, texts: list[str], *, kind: Literal["query", "document"] = "document"
    ) -> list[list[float]]: ...  # pragma: no cover


def clean_memory(value: str) -> str:
    """A memory as saved: one line, visible characters, 1 to MAX_TEXT characters."""
    if text_rules.has_unstorable(value):
        raise InputError("bad_characters")
    value = " ".join(w for w in (text_rules.strip_hidden(w) for w in value.split()) if w)
    if not value:
        raise InputError("empty_memory")
    if len(value) > MAX_TEXT:
        raise InputError("memory_too_long", max=MAX_TEXT)
    return value


def _key(value: str) -> str:
    return " ".join(_WORD.findall(value.casefold()))


async def list_memories(*, session: AsyncSession, user_id: int) -> list[Memory]:
    """The user's memories, newest first."""
    stmt = select(Memory).where(col(Memory.user_id) == user_id).order_by(col(Memory.id).desc())
    return list((await session.exec(stmt)).all())


async def _own(session: AsyncSession, user_id: int, memory_id: int) -> Memory:
    stmt = select(Memory).where(col(Memory.id) == memory_id, col(Memory.user_id) == user_id)
    memory = (await session.exec(stmt)).first()
    if memory is None:
        raise InputError("memory_not_found")
    return memory


async def add_memory(
    *, session: AsyncSession, user_id: int, text: str, source_conversation_id: str | None = None,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> Memory:  # fmt: skip
    """Remember a fact for the user (the same fact twice: `memory_exists`; over `max_items`: `too_many_memories`)."""
    text = clean_memory(text)
    existing = await list_memories(session=session, user_id=user_id)
    if any(_key(m.text) == _key(text) for m in existing):
        raise InputError("memory_exists")
    if len(existing) >= max_items:
        raise InputError("too_many_memories", max=max_items)
    memory = Memory(user_id=user_id, text=text, source_conversation_id=source_conversation_id)
    session.add(memory)
    await session.flush()
    return memory


async def update_memory(
    *, session: AsyncSession, user_id: int, memory_id: int, text: str | None = None, enabled: bool | None = None
) -> Memory:
    """Edit a memory's text or switch it off/on (a new text drops its embedding, made again when needed)."""
    memory = await _own(session, user_id, memory_id)
    if text is not None and (text := clean_memory(text)) != memory.text:
        memory.text, memory.embedding = text, None
    if enabled is not None:
        memory.enabled = bool(enabled)
    memory.updated_at = utcnow()
    session.add(memory)
    await session.flush()
    return memory


async def delete_memory(*, session: AsyncSession, user_id: int, memory_id: int) -> Memory:
    """Forget one memory; the deleted row (its text, for an undo that adds it back)."""
    memory = await _own(session, user_id, memory_id)
    await session.delete(memory)
    await session.flush()
    return memory


async def delete_memories(*, session: AsyncSession, user_id: int, memory_ids: Sequence[int]) -> int:
    """Forget several memories of the user's (the undo of "memory updated"); how many were deleted."""
    if not memory_ids:
        return 0
    stmt = delete(Memory).where(col(Memory.user_id) == user_id, col(Memory.id).in_(list(memory_ids)))
    result = await session.exec(stmt)
    return int(result.rowcount or 0)


async def save_proposed(
    *, session: AsyncSession, user_id: int, facts: Sequence[str], conversation_id: str | None = None,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> list[Memory]:  # fmt: skip
    """Save the facts the model proposed after an answer (duplicates and unusable ones skipped; none over the
    user's limit); the memories added (empty when the user switched memory off)."""
    if not facts or not await memory_enabled(session=session, user_id=user_id):
        return []
    added = []
    for fact in facts:
        try:
            added.append(await add_memory(session=session, user_id=user_id, text=fact,
                                          source_conversation_id=conversation_id, max_items=max_items))  # fmt: skip
        except InputError as exc:
            if exc.code == "too_many_memories":
                break
    return added


def _terms(value: str) -> set[str]:
    """Words of 3+ letters, cut to 5 (a crude stem that serves English and Russian endings alike)."""
    return {w[:5] for w in _WORD.findall(value.casefold()) if len(w) >= 3}


def word_overlap(query: str, memory: str) -> float:
    """Similarity by shared word stems (cosine of the sets), 0..1."""
    q, m = _terms(query), _terms(memory)
    if not q or not m:
        return 0.0
    return len(q & m) / math.sqrt(len(q) * len(m))


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


async def _vector_scores(memories: list[Memory], query: str, embedder: Embedder) -> list[float]:
    """Cosine similarity of each memory to the query; memories without a (current) embedding get one, saved."""
    [q] = await embedder.embed([query], kind="query")
    stored = [json.loads(m.embedding) if m.embedding else None for m in memories]
    missing = [i for i, v in enumerate(stored) if v is None or len(v) != len(q)]
    if missing:
        vectors = await embedder.embed([memories[i].text for i in missing], kind="document")
        for i, vector in zip(missing, vectors, strict=True):
            stored[i] = vector
            memories[i].embedding = json.dumps([round(x, 6) for x in vector])
    return [_cosine(q, v) if v is not None and len(v) == len(q) else 0.0 for v in stored]


async def relevant_memories(
    *, session: AsyncSession, user_id: int, query: str, embedder: Embedder | None, budget_tokens: int
) -> list[str]:
    """The user's enabled memories most relevant to `query` that fit `budget_tokens`, most relevant first.

    By embedding similarity with an embedder (an embedder failure falls back to word overlap, logged), else by
    shared words; equally relevant ones newest first. Memories made without an embedding get one here."""
    if budget_tokens <= 0:
        return []
    stmt = select(Memory).where(col(Memory.user_id) == user_id, col(Memory.enabled).is_(True))
    memories = list((await session.exec(stmt.order_by(col(Memory.id).desc()))).all())
    if not memories:
        return []
    scores: list[float] | None = None
    if embedder is not None:
        try:
            scores = await _vector_scores(memories, query, embedder)
            session.add_all(memories)
        except Exception as exc:
            log.warning("memory relevance by words: the embedder failed (%s)", type(exc).__name__)
    if scores is None:
        scores = [word_overlap(query, m.text) for m in memories]
    ranked = sorted(range(len(memories)), key=lambda i: -scores[i])  # stable: newest first among equals
    chosen, used = [], 0
    for i in ranked:
        cost = estimate_tokens(memories[i].text)
        if used + cost <= budget_tokens:
            chosen.append(memories[i].text)
            used += cost
    return chosen
