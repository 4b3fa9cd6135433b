"""The search structures beside the knowledge tables: a full-text index and vector indexes, per backend.

`knowledge_index()` picks the backend from the database URL: SQLite (FTS5 + sqlite-vec, in
rubin_app.knowledge.index_sqlite) or PostgreSQL (tsvector + GIN, pgvector when the `vector` extension is
available, in rubin_app.knowledge.index_postgres). Index rows are keyed by chunk id and carry the chunk's
knowledge base and file, so searches filter by base and deletions are by file or base. The vector tables are
made at run time, one per dimension (e.g. knowledge_vec_384): the dimension depends on the embedding model.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

from rubin_app.config import get_settings
from rubin_app.knowledge.models import KnowledgeChunk

MAX_DIMENSION = 2000  # pgvector's HNSW limit; no embedding model Rubin serves comes close


class KnowledgeIndexError(Exception):
    """Input the index refuses, with a code: "wrong_dimension", "bad_vector" or "bad_chunk"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class KnowledgeIndex(ABC):
    """Full-text and vector search over knowledge chunks; every search is limited to the given bases."""

    @property
    @abstractmethod
    def vectors_available(self) -> bool:
        """Whether vectors are stored and searched (False: full-text only)."""

    @abstractmethod
    async def add(self, chunks: Sequence[KnowledgeChunk], vectors: Sequence[Sequence[float]] | None) -> None:
        """Index saved chunks (with ids), and their vectors when given; re-adding a chunk replaces it."""

    @abstractmethod
    async def delete_file(self, file_id: int) -> None:
        """Remove a file's chunks from every index."""

    @abstractmethod
    async def delete_kb(self, kb_id: int) -> None:
        """Remove a knowledge base's chunks from every index."""

    @abstractmethod
    async def search_text(self, kb_ids: Sequence[int], query: str, k: int) -> list[tuple[int, float]]:
        """Best full-text matches as (chunk id, score), higher is better; [] when nothing matches."""

    @abstractmethod
    async def search_vector(self, kb_ids: Sequence[int], vector: Sequence[float], k: int) -> list[tuple[int, float]]:
        """Nearest chunks as (chunk id, cosine distance), nearest first; only bases with vectors of this size."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""


def check_batch(chunks: Sequence[KnowledgeChunk], vectors: Sequence[Sequence[float]] | None) -> int | None:
    """Validate a batch for `add`: ids present, one vector per chunk, one finite dimension; return it."""
    if any(chunk.id is None for chunk in chunks):
        raise KnowledgeIndexError("bad_chunk", "chunks must be saved (have ids) before they are indexed")
    if vectors is None or not chunks:
        return None
    if len(vectors) != len(chunks):
        raise KnowledgeIndexError("bad_vector", f"{len(vectors)} vectors for {len(chunks)} chunks")
    dimension = len(vectors[0])
    if not 1 <= dimension <= MAX_DIMENSION:
        raise KnowledgeIndexError("wrong_dimension", f"vectors must have 1 to {MAX_DIMENSION} numbers")
    for vector in vectors:
        if len(vector) != dimension:
            raise KnowledgeIndexError(
                "wrong_dimension", f"vectors of different sizes in one batch ({len(vector)} and {dimension})"
            )
        if not all(math.isfinite(value) for value in vector):
            raise KnowledgeIndexError("bad_vector", "a vector holds a value that is not a finite number")
    return dimension


def check_kb_dimension(kb_id: int, stored: int | None, dimension: int) -> None:
    """Refuse vectors whose size differs from the one the knowledge base was indexed with."""
    if stored is not None and stored != dimension:
        raise KnowledgeIndexError(
            "wrong_dimension",
            f"the embedding model returned {dimension}-number vectors, but knowledge base {kb_id} holds "
            f"{stored}-number vectors: re-index it after changing the embedding model",
        )


TEXT_BUDGET = 4_000  # most passages one full-text search scores (see prune_terms)


def prune_terms(terms: Sequence[str], frequency: dict[str, int], budget: int = TEXT_BUDGET) -> list[str]:
    """The query terms to search: rarest first, leaving out the most frequent ones once together they would
    make more than `budget` passages to score (they weigh least in bm25 / ts_rank anyway); unknown terms go."""
    kept: list[str] = []
    total = 0
    for term in sorted((term for term in terms if frequency.get(term)), key=lambda term: frequency[term]):
        if kept and total + frequency[term] > budget:
            break
        kept.append(term)
        total += frequency[term]
    return kept


_indexes: dict[str, KnowledgeIndex] = {}


def knowledge_index(url: str | None = None) -> KnowledgeIndex:
    """The process-wide index for a database URL (the settings' URL by default)."""
    url = url or get_settings().async_database_url
    if url not in _indexes:
        if url.startswith("sqlite"):
            from rubin_app.knowledge.index_sqlite import SqliteIndex

            _indexes[url] = SqliteIndex(url)
        else:
            from rubin_app.knowledge.index_postgres import PostgresIndex

            _indexes[url] = PostgresIndex(url)
    return _indexes[url]


async def close_indexes() -> None:
    """Close every index (tests, shutdown)."""
    for index in list(_indexes.values()):
        await index.close()
    _indexes.clear()
