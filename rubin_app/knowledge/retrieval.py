"""Hybrid retrieval over the knowledge a user may read: full-text + vectors, reciprocal-rank fusion, an
optional reranker, and a relevance floor so that an off-topic question gets no passages at all."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import get_settings
from rubin_app.knowledge.analyzer import coverage, query_terms
from rubin_app.knowledge.index import KnowledgeIndex
from rubin_app.knowledge.models import FileStatus, KnowledgeBase, KnowledgeChunk, KnowledgeFile

log = logging.getLogger(__name__)
RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al.)
MIN_CANDIDATES = 30  # each search's depth: max(this, 4 k)
RERANK_POOL = 3  # with a reranker, it reorders the best 3 k passages


class QueryEmbedder(Protocol):
    """What retrieval needs of an embedder (rubin_app.llm.embeddings.Embedder)."""

    async def embed(self, texts: list[str], *, kind: Literal["query", "document"] = "document") -> list[list[float]]:
        """L2-normalised vectors, one per text."""
        ...


class RerankClient(Protocol):
    """What the reranker needs of a client (rubin_app.llm.client.LLMClient)."""

    async def rerank(self, model: str, query: str, documents: list[str]) -> list[tuple[int, float]]:
        """(document index, score), best first."""
        ...


class Reranker:
    """Reorders passages with a connection's /v1/rerank model."""

    def __init__(self, client: RerankClient, model: str) -> None:
        self.client = client
        self.model = model

    async def order(self, query: str, texts: list[str]) -> list[int]:
        """Indexes of `texts`, best first (texts the server left out follow in their order)."""
        ranked = [index for index, _ in await self.client.rerank(self.model, query, texts)]
        return list(dict.fromkeys(ranked + list(range(len(texts)))))


@dataclass
class Passage:
    """A retrieved chunk with where it comes from (for citations) and why it was chosen."""

    chunk_id: int
    file_id: int
    kb_id: int
    filename: str
    page: int | None
    heading: str
    text: str
    score: float  # fused (reciprocal-rank) score; higher is better
    text_rank: int | None  # 1-based rank in the full-text results
    vector_rank: int | None  # 1-based rank in the vector results
    relevance: float = 0.0  # max(vector similarity, share of the query's words present): what the floor tests


@dataclass
class _Base:
    id: int
    model: str
    dim: int | None


async def _readable_bases(*, session: AsyncSession, user_id: int, kb_ids: list[int] | None) -> list[_Base]:
    if kb_ids is not None and not kb_ids:
        return []
    stmt = select(KnowledgeBase.id, KnowledgeBase.embedding_model, KnowledgeBase.embedding_dim).where(
        or_(col(KnowledgeBase.owner_id) == user_id, col(KnowledgeBase.shared).is_(True))
    )
    if kb_ids is not None:
        stmt = stmt.where(col(KnowledgeBase.id).in_(kb_ids))
    rows = (await session.exec(stmt.order_by(col(KnowledgeBase.id)))).all()
    return [_Base(int(kb_id), model, dim) for kb_id, model, dim in rows if kb_id is not None]


async def accessible_kb_ids(*, session: AsyncSession, user_id: int, kb_ids: list[int] | None) -> list[int]:
    """The user's own bases and the shared ones (of `kb_ids` when given; others are dropped silently)."""
    return [base.id for base in await _readable_bases(session=session, user_id=user_id, kb_ids=kb_ids)]


async def _query_vector(embedder: QueryEmbedder | None, query: str) -> list[float] | None:
    """The query's embedding, or None (no embedder, or it failed: retrieval goes on with full-text only)."""
    if embedder is None:
        return None
    try:
        vectors = await embedder.embed([query], kind="query")
        return list(vectors[0]) if vectors and vectors[0] else None
    except Exception as exc:  # any embedder failure degrades to full-text, it never fails the answer
        log.warning(
            "query embedding failed (%s %s): full-text retrieval only", type(exc).__name__, getattr(exc, "code", "")
        )
        return None


def _vector_bases(bases: list[_Base], vector: list[float], embedder: object) -> list[int]:
    """Bases whose vectors are comparable with the query's: same size, and same model when both are known."""
    model = str(getattr(embedder, "model", "") or "")
    return [b.id for b in bases if b.dim == len(vector) and (not model or not b.model or b.model == model)]


async def _nothing() -> list[tuple[int, float]]:
    return []


async def _vector_hits(
    index: KnowledgeIndex, bases: list[_Base], query: str, embedder: QueryEmbedder | None, depth: int
) -> list[tuple[int, float]]:
    vector = await _query_vector(embedder, query)
    if vector is None or not (searchable := _vector_bases(bases, vector, embedder)):
        return []
    return await index.search_vector(searchable, vector, depth)


def fuse(*rankings: Sequence[int]) -> dict[int, float]:
    """Reciprocal-rank fusion: sum of 1 / (RRF_K + rank) over the rankings a chunk appears in."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    return scores


async def _load(
    session: AsyncSession, chunk_ids: list[int], readable: list[int]
) -> dict[int, tuple[KnowledgeChunk, str]]:
    """The chunks (of ready files in readable bases) with their file names, by id."""
    stmt = (
        select(KnowledgeChunk, KnowledgeFile.filename)
        .join(KnowledgeFile, col(KnowledgeFile.id) == col(KnowledgeChunk.file_id))
        .where(col(KnowledgeChunk.id).in_(chunk_ids), col(KnowledgeChunk.kb_id).in_(readable))
        .where(col(KnowledgeFile.kb_id).in_(readable), col(KnowledgeFile.status) == FileStatus.ready)
    )
    return {chunk.id: (chunk, filename) for chunk, filename in (await session.exec(stmt)).all() if chunk.id}


def query_language(query: str) -> str:
    """'ru' when most of the query's letters are Cyrillic, else 'en' (the two languages the analyzer stems)."""
    cyrillic = sum(1 for ch in query if "\u0400" <= ch <= "\u04ff")
    latin = sum(1 for ch in query if ch.isascii() and ch.isalpha())
    return "ru" if cyrillic > latin else "en"


def understands(embedder: object, query: str) -> bool:
    """Whether the embedder's model embeds the query's language well (it declares `languages`, or any)."""
    languages = getattr(embedder, "languages", None)
    return not languages or query_language(query) in languages


async def retrieve(
    *,
    session: AsyncSession,
    index: KnowledgeIndex,
    user_id: int,
    query: str,
    kb_ids: list[int] | None,
    embedder: QueryEmbedder | None,
    k: int = 5,
    reranker: Reranker | None = None,
    min_score: float | None = None,
    modes: tuple[str, ...] = ("text", "vector"),
) -> list[Passage]:
    """Up to k passages for a query from the bases the user may read, best first; [] when none is relevant.

    `min_score` is the relevance floor (default KNOWLEDGE_MIN_RELEVANCE); `modes` ("text", "vector") lets
    benchmarks measure each search alone.
    """
    floor = get_settings().knowledge_min_relevance if min_score is None else min_score
    bases = await _readable_bases(session=session, user_id=user_id, kb_ids=kb_ids)
    readable = [base.id for base in bases]
    if not readable or not query.strip() or k <= 0:
        return []
    depth = max(MIN_CANDIDATES, 4 * k)
    if not understands(embedder, query):  # an English-only model ranks a Russian question at random: words only
        modes = tuple(m for m in modes if m != "vector")
    text_hits, vector_hits = await asyncio.gather(  # the full-text search runs while the query is embedded
        index.search_text(readable, query, depth) if "text" in modes else _nothing(),
        _vector_hits(index, bases, query, embedder, depth) if "vector" in modes else _nothing(),
    )
    text_ranking = [chunk_id for chunk_id, _ in text_hits]
    vector_ranking = [chunk_id for chunk_id, _ in vector_hits]
    scores = fuse(text_ranking, vector_ranking)
    similarity = {chunk_id: 1.0 - distance for chunk_id, distance in vector_hits}
    rows = await _load(session, list(scores), readable)
    terms = query_terms(query)
    passages: list[Passage] = []
    wanted = k * RERANK_POOL if reranker is not None else k
    for chunk_id in sorted(rows, key=lambda cid: -scores[cid]):
        if len(passages) >= wanted:
            break
        chunk, filename = rows[chunk_id]
        relevance = max(similarity.get(chunk_id, 0.0), coverage(terms, chunk.text))
        if relevance < floor:
            continue
        passages.append(
            Passage(
                chunk_id=chunk_id, file_id=chunk.file_id, kb_id=chunk.kb_id, filename=filename, page=chunk.page,
                heading=chunk.heading, text=chunk.text, score=scores[chunk_id], relevance=relevance,
                text_rank=text_ranking.index(chunk_id) + 1 if chunk_id in text_ranking else None,
                vector_rank=vector_ranking.index(chunk_id) + 1 if chunk_id in vector_ranking else None,
            )
        )  # fmt: skip
    if reranker is not None and len(passages) > 1:
        passages = await _reranked(reranker, query, passages)
    return passages[:k]


async def _reranked(reranker: Reranker, query: str, passages: list[Passage]) -> list[Passage]:
    """Passages in the reranker's order; on any failure the fused order stays (logged)."""
    try:
        order = await reranker.order(query, [passage.text for passage in passages])
    except Exception as exc:  # a reranker that fails costs the reordering, never the answer
        log.warning("reranking failed (%s %s): fused order kept", type(exc).__name__, getattr(exc, "code", ""))
        return passages
    return [passages[index] for index in order]
