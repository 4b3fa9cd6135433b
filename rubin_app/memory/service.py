"""Long-term memories: a user's list of short facts (see, add, edit, delete, switch off), and the ones most
relevant to a question within a token budget — by embedding similarity when an embedder is given, else by word
overlap. Every query filters by the acting user. Nothing here commits: the caller's session scope does.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import operator
import re
from array import array
from collections.abc import Sequence
from typing import Literal, Protocol

from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.core.clock import utcnow
from rubin_app.memory.instructions import memory_enabled
from rubin_app.memory.models import Memory
from rubin_app.services import text as text_rules
from rubin_app.services.chats import InputError
from rubin_app.services.context import estimate_tokens
from rubin_app.vault.service import get_vault

log = logging.getLogger(__name__)

MAX_TEXT = 500
DEFAULT_MAX_ITEMS = 200
_WORD = re.compile(r"\w+", re.UNICODE)
TEXT_FIELD = "memories.text"  # the sealed column's name (vault/orm.py field_name)


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
        others = await list_memories(session=session, user_id=user_id)
        if any(m.id != memory_id and _key(m.text) == _key(text) for m in others):
            raise InputError("memory_exists")
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


def _overlap(q: set[str], m: set[str]) -> float:
    return len(q & m) / math.sqrt(len(q) * len(m)) if q and m else 0.0


def word_overlap(query: str, memory: str) -> float:
    """Similarity by shared word stems (cosine of the sets), 0..1."""
    return _overlap(_terms(query), _terms(memory))


def _unit(vector: Sequence[float]) -> array[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector)) or 1.0
    return array("f", (x / norm for x in vector))


def pack_vector(vector: Sequence[float]) -> str:
    """A vector as stored: L2-normalised float32, base64 (a fraction of JSON's size and parse time)."""
    return base64.b64encode(_unit(vector).tobytes()).decode("ascii")


def unpack_vector(stored: str | None) -> array[float] | None:
    """A stored vector (None when missing or unreadable)."""
    if not stored:
        return None
    try:
        vector = array("f")
        vector.frombytes(base64.b64decode(stored, validate=True))
    except (ValueError, binascii.Error):
        return None
    return vector


async def _vector_scores(
    session: AsyncSession, user_id: int, rows: list[tuple[int, str, str | None]], query: str, embedder: Embedder
) -> list[float]:
    """Cosine similarity of each memory (id, text, stored vector) to the query; memories without a (current)
    embedding get one, saved through `session`."""
    [asked] = await embedder.embed([query], kind="query")
    q = _unit(asked)
    stored = [unpack_vector(vector) for _, _, vector in rows]
    missing = [i for i, v in enumerate(stored) if v is None or len(v) != len(q)]
    if missing:
        vectors = await embedder.embed([rows[i][1] for i in missing], kind="document")
        made = []
        for i, vector in zip(missing, vectors, strict=True):
            packed = pack_vector(vector)
            stored[i] = unpack_vector(packed)
            made.append((rows[i][0], packed))
        await _keep_vectors(session, user_id, made)
    return [math.fsum(map(operator.mul, q, v)) if v is not None and len(v) == len(q) else 0.0 for v in stored]


async def _keep_vectors(session: AsyncSession, user_id: int, made: list[tuple[int, str]]) -> None:
    """Save memories' new embeddings in a savepoint: the chat's send path reads through a reader session, whose
    write may find the database busy — then they are simply made again next time, and the answer goes on."""
    try:
        async with session.begin_nested():
            for memory_id, packed in made:
                where = (col(Memory.id) == memory_id, col(Memory.user_id) == user_id)
                await session.exec(update(Memory).where(*where).values(embedding=packed))
    except Exception as exc:
        log.info("memory embeddings not saved this time (%s)", type(exc).__name__)


async def relevant_memories(
    *, session: AsyncSession, user_id: int, query: str, embedder: Embedder | None, budget_tokens: int
) -> list[str]:
    """The user's enabled memories most relevant to `query` that fit `budget_tokens`, most relevant first.

    By embedding similarity with an embedder (an embedder failure falls back to word overlap, logged), else by
    shared words; equally relevant ones newest first. Memories without an embedding get one here (pass a writable
    session with an embedder). Columns are read, not ORM rows: this is on the way to a chat's first token."""
    if budget_tokens <= 0:
        return []
    stmt = select(Memory.id, Memory.text, Memory.embedding).where(
        col(Memory.user_id) == user_id, col(Memory.enabled).is_(True)
    )
    raw = (await session.exec(stmt.order_by(col(Memory.id).desc()))).all()
    if not raw:
        return []
    cipher = await get_vault().prime(session, user_id)  # column selects: opened here, not by the ORM hooks
    rows = [(i or 0, cipher.show(TEXT_FIELD, text, i), vector) for i, text, vector in raw]
    scores: list[float] | None = None
    if embedder is not None:
        try:
            scores = await _vector_scores(session, user_id, rows, query, embedder)
        except Exception as exc:  # any embedder failure: relevance by words instead
            log.warning("memory relevance by words: the embedder failed (%s)", type(exc).__name__)
    if scores is None:
        asked = _terms(query)
        scores = [_overlap(asked, _terms(text)) for _, text, _ in rows]
    ranked = sorted(range(len(rows)), key=lambda i: -scores[i])  # stable: newest first among equals
    chosen, used = [], 0
    for i in ranked:
        cost = estimate_tokens(rows[i][1])
        if used + cost <= budget_tokens:
            chosen.append(rows[i][1])
            used += cost
    return chosen
