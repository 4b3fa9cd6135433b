"""PostgreSQL backend of the knowledge index: tsvector + GIN over stemmed terms, pgvector when available.

Tables (made at first use, under an advisory lock so several workers can start together): knowledge_fts
(chunk id, kb, file, tsvector of the analyzer's terms with the 'simple' configuration) and, when the `vector`
extension can be created, knowledge_vec_D per dimension D with an HNSW index (cosine). Rows reference
knowledge_chunks with ON DELETE CASCADE, so deleting a file, base or user also empties the index. Without
pgvector (e.g. Debian's PostgreSQL 15) the index is full-text only: `vectors_available` is False, logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from rubin_app.knowledge.analyzer import index_terms, query_terms
from rubin_app.knowledge.index import (
    TEXT_BUDGET,
    KnowledgeIndex,
    check_batch,
    check_kb_dimension,
    prune_terms,
)
from rubin_app.knowledge.models import KnowledgeChunk
from rubin_app.services.db import get_engine

log = logging.getLogger(__name__)
LOCK_KEY = 7_415_015  # pg_advisory_xact_lock key for the index's DDL
VEC_TABLES = (
    "SELECT tablename FROM pg_tables WHERE tablename ~ '^knowledge_vec_[0-9]+$' AND schemaname = current_schema()"
)
EF_SEARCH = 200  # HNSW candidates per query (pgvector's default is 40)
FTS_DDL = (
    "CREATE TABLE IF NOT EXISTS knowledge_fts (chunk_id integer PRIMARY KEY REFERENCES knowledge_chunks(id) "
    "ON DELETE CASCADE, kb_id integer NOT NULL, file_id integer NOT NULL, terms tsvector NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_knowledge_fts_terms ON knowledge_fts USING gin (terms)",
    "CREATE INDEX IF NOT EXISTS ix_knowledge_fts_kb ON knowledge_fts (kb_id)",
    "CREATE INDEX IF NOT EXISTS ix_knowledge_fts_file ON knowledge_fts (file_id)",
    # Passages per term, for prune_terms (kept by add/delete; rows removed by a cascade are not subtracted)
    "CREATE TABLE IF NOT EXISTS knowledge_fts_terms (term text PRIMARY KEY, docs integer NOT NULL)",
)
TERM_COUNTS = (
    "SELECT w AS term, count(*) AS n FROM knowledge_fts, unnest(tsvector_to_array(terms)) AS w WHERE {where} "
    "GROUP BY w ORDER BY w"  # one lock order for every writer
)
ADD_TERMS = (
    "INSERT INTO knowledge_fts_terms (term, docs) SELECT term, n FROM (" + TERM_COUNTS + ") AS d "
    "ON CONFLICT (term) DO UPDATE SET docs = knowledge_fts_terms.docs + EXCLUDED.docs"
)
SUBTRACT_TERMS = (
    "UPDATE knowledge_fts_terms AS t SET docs = greatest(0, t.docs - d.n) FROM (" + TERM_COUNTS + ") AS d "
    "WHERE t.term = d.term"
)


def _vec_ddl(dim: int) -> tuple[str, ...]:
    table = f"knowledge_vec_{dim}"
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (chunk_id integer PRIMARY KEY REFERENCES knowledge_chunks(id) "
        f"ON DELETE CASCADE, kb_id integer NOT NULL, file_id integer NOT NULL, embedding vector({dim}) NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS ix_{table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)",
        f"CREATE INDEX IF NOT EXISTS ix_{table}_kb ON {table} (kb_id)",
        f"CREATE INDEX IF NOT EXISTS ix_{table}_file ON {table} (file_id)",
    )


def _literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(value)) for value in vector) + "]"


class PostgresIndex(KnowledgeIndex):
    """Full-text (tsvector) and pgvector search on the app's PostgreSQL database."""

    TEXT_BUDGET = TEXT_BUDGET  # most passages one full-text search scores (index.prune_terms)

    def __init__(self, url: str) -> None:
        self._url = url
        self._ready = False
        self._vectors = False
        self._dims: set[int] = set()

    @property
    def vectors_available(self) -> bool:
        return self._vectors

    async def _ensure(self) -> None:
        if self._ready:
            return
        async with get_engine(self._url).begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            for statement in FTS_DDL:
                await conn.execute(text(statement))
        self._vectors = await self._create_vector_extension()
        self._ready = True

    async def _create_vector_extension(self) -> bool:
        try:
            async with get_engine(self._url).begin() as conn:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
                await conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except DBAPIError as exc:
            log.warning(
                "PostgreSQL has no usable pgvector extension (%s): knowledge search is full-text only",
                str(exc.orig).splitlines()[0] if exc.orig else exc,
            )
            return False
        return True

    async def _ensure_dim(self, conn: AsyncConnection, dim: int) -> None:
        if dim not in self._dims:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            for statement in _vec_ddl(dim):
                await conn.execute(text(statement))  # remembered in _dims once the transaction commits

    async def _existing_dims(self, conn: AsyncConnection) -> list[int]:
        rows = await conn.execute(text(VEC_TABLES))
        return [int(name.rsplit("_", 1)[1]) for (name,) in rows]

    async def add(self, chunks: Sequence[KnowledgeChunk], vectors: Sequence[Sequence[float]] | None) -> None:
        dim = check_batch(chunks, vectors)
        if not chunks:
            return
        await self._ensure()
        ids = [chunk.id for chunk in chunks]
        rows = [{"id": c.id, "kb": c.kb_id, "file": c.file_id, "terms": index_terms(c.text)} for c in chunks]
        async with get_engine(self._url).begin() as conn:
            by_ids = {"ids": ids}
            await conn.execute(text(SUBTRACT_TERMS.format(where="chunk_id = ANY(:ids)")), by_ids)
            await conn.execute(text("DELETE FROM knowledge_fts WHERE chunk_id = ANY(:ids)"), by_ids)
            await conn.execute(
                text(
                    "INSERT INTO knowledge_fts (chunk_id, kb_id, file_id, terms) "
                    "VALUES (:id, :kb, :file, to_tsvector('simple', :terms))"
                ),
                rows,
            )
            await conn.execute(text(ADD_TERMS.format(where="chunk_id = ANY(:ids)")), by_ids)
            if not self._vectors:
                return
            for existing in await self._existing_dims(conn):
                await conn.execute(
                    text(f"DELETE FROM knowledge_vec_{existing} WHERE chunk_id = ANY(:ids)"), {"ids": ids}
                )
            if dim is not None and vectors is not None:
                await self._add_vectors(conn, rows, dim, vectors)
        if dim is not None and self._vectors:
            self._dims.add(dim)

    async def _add_vectors(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], dim: int, vectors: Sequence[Sequence[float]]
    ) -> None:
        kb_ids = sorted({row["kb"] for row in rows})
        stored = await conn.execute(
            text("SELECT id, embedding_dim FROM knowledge_bases WHERE id = ANY(:ids) FOR UPDATE"), {"ids": kb_ids}
        )
        for kb_id, embedding_dim in stored.all():
            check_kb_dimension(kb_id, embedding_dim, dim)
        await conn.execute(
            text("UPDATE knowledge_bases SET embedding_dim = :dim WHERE id = ANY(:ids) AND embedding_dim IS NULL"),
            {"dim": dim, "ids": kb_ids},
        )
        await self._ensure_dim(conn, dim)
        await conn.execute(
            text(
                f"INSERT INTO knowledge_vec_{dim} (chunk_id, kb_id, file_id, embedding) "
                "VALUES (:id, :kb, :file, CAST(:embedding AS vector))"
            ),
            [{**row, "embedding": _literal(vector)} for row, vector in zip(rows, vectors, strict=True)],
        )

    async def delete_file(self, file_id: int) -> None:
        await self._delete("file_id", file_id)

    async def delete_kb(self, kb_id: int) -> None:
        await self._delete("kb_id", kb_id)

    async def _delete(self, column: str, value: int) -> None:
        await self._ensure()
        async with get_engine(self._url).begin() as conn:
            await conn.execute(text(SUBTRACT_TERMS.format(where=f"{column} = :value")), {"value": value})
            await conn.execute(text(f"DELETE FROM knowledge_fts WHERE {column} = :value"), {"value": value})
            if self._vectors:
                for dim in await self._existing_dims(conn):
                    await conn.execute(
                        text(f"DELETE FROM knowledge_vec_{dim} WHERE {column} = :value"), {"value": value}
                    )

    async def search_text(self, kb_ids: Sequence[int], query: str, k: int) -> list[tuple[int, float]]:
        terms = query_terms(query)
        if not kb_ids or not terms or k <= 0:
            return []
        await self._ensure()
        async with get_engine(self._url).connect() as conn:
            known = await conn.execute(
                text("SELECT term, docs FROM knowledge_fts_terms WHERE term = ANY(:terms)"), {"terms": terms}
            )
            kept = prune_terms(terms, {term: int(docs) for term, docs in known}, self.TEXT_BUDGET)
            if not kept:
                return []
            return await self._ranked(conn, kb_ids, kept, k)

    async def _ranked(
        self, conn: AsyncConnection, kb_ids: Sequence[int], terms: list[str], k: int
    ) -> list[tuple[int, float]]:
        sql = text(
            "SELECT chunk_id, ts_rank(terms, q) AS score FROM knowledge_fts, to_tsquery('simple', :q) AS q "
            "WHERE kb_id = ANY(:ids) AND terms @@ q ORDER BY score DESC, chunk_id LIMIT :k"
        )
        query_text = " | ".join(terms)  # the analyzer's terms are letters and digits only
        rows = await conn.execute(sql, {"q": query_text, "ids": list(kb_ids), "k": k})
        return [(int(chunk_id), float(score)) for chunk_id, score in rows]

    async def search_vector(self, kb_ids: Sequence[int], vector: Sequence[float], k: int) -> list[tuple[int, float]]:
        if not kb_ids or not vector or k <= 0:
            return []
        await self._ensure()
        if not self._vectors:
            return []
        dim = len(vector)
        async with get_engine(self._url).begin() as conn:
            if dim not in self._dims:  # vector tables are never dropped: one catalog look per dimension
                if dim not in await self._existing_dims(conn):
                    return []
                self._dims.add(dim)
            await conn.execute(text(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, k)}"))
            sql = text(
                f"SELECT chunk_id, embedding <=> CAST(:v AS vector) AS d FROM knowledge_vec_{dim} "
                "WHERE kb_id = ANY(:ids) ORDER BY d LIMIT :k"
            )
            params = {"v": _literal(vector), "ids": list(kb_ids), "k": k}
            rows = (await conn.execute(sql, params)).all()
            if len(rows) < k:  # the HNSW graph's candidates were mostly other bases': search these bases exactly
                await conn.execute(text("SET LOCAL enable_indexscan = off"))
                rows = (await conn.execute(sql, params)).all()
            return [(int(chunk_id), float(distance)) for chunk_id, distance in rows]

    async def close(self) -> None:
        self._ready = False
