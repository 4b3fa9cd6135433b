"""SQLite backend of the knowledge index: FTS5 over stemmed terms, sqlite-vec for vectors.

Python's own sqlite3 may not load extensions, so this backend keeps connections of its own (sqlean.py, an
extension-capable SQLite build) to the app's database file, each in one thread. The app's aiosqlite
sessions never touch these tables, so backups and migrations need no extension.

Tables (made at first use): knowledge_fts (FTS5; rowid = chunk id), and per vector dimension D
knowledge_vec_D (plain table: float32 vectors by chunk, file and base), knowledge_vecf_D (sqlite-vec vec0,
the same vectors, kb_id partition key: exact cosine scans) and knowledge_vecbit_D (vec0, one bit per number).
Up to KNOWLEDGE_EXACT_SEARCH_LIMIT vectors in the searched bases the search is exact; above, a
binary-quantised scan picks candidates that the float vectors then re-rank. A writer and two readers
(full-text, vectors), so the two searches of one retrieval run at the same time.
"""

from __future__ import annotations

import asyncio
import logging
import re
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, TypeVar

import sqlean
import sqlite_vec

from rubin_app.config import get_settings
from rubin_app.knowledge.analyzer import index_terms, query_terms
from rubin_app.knowledge.index import TEXT_BUDGET, KnowledgeIndex, check_batch, check_kb_dimension, prune_terms
from rubin_app.knowledge.models import KnowledgeChunk

log = logging.getLogger(__name__)
T = TypeVar("T")
BUSY_TIMEOUT_MS = 15_000
VEC_TABLE = re.compile(r"^knowledge_vec_(\d+)$")
FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_fts USING fts5("
    "terms, kb_id UNINDEXED, file_id UNINDEXED, tokenize='unicode61 remove_diacritics 0')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_fts_vocab USING fts5vocab(knowledge_fts, 'row')",
)


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _blob(vector: Sequence[float]) -> bytes:
    return array("f", vector).tobytes()


def _load_vec(conn: Any) -> None:
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)


@lru_cache(maxsize=1)
def vec_loadable() -> bool:
    """Whether sqlite-vec loads into sqlean here (said once in the log when it does not)."""
    try:
        conn = sqlean.connect(":memory:")
        _load_vec(conn)
        conn.close()
    except (AttributeError, sqlean.OperationalError) as exc:
        log.warning("sqlite-vec could not be loaded (%s): knowledge search is full-text only", exc)
        return False
    return True


class _Connection:
    """One sqlean connection with sqlite-vec, used from one thread only."""

    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"knowledge-{name}")
        self.conn: Any = None

    def _open(self) -> Any:
        if self.conn is None:
            conn = sqlean.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            if vec_loadable():
                _load_vec(conn)
            self.conn = conn
        return self.conn

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(connection, *args) in this connection's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(self._open(), *args))

    async def close(self) -> None:
        def shut(conn: Any) -> None:
            conn.close()
            self.conn = None

        if self.conn is not None:
            await self.run(shut)
        self.executor.shutdown(wait=True)


def _vec_dims(conn: Any) -> list[int]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'knowledge_vec_%'").fetchall()
    return [int(m.group(1)) for (name,) in rows if (m := VEC_TABLE.match(name))]


def _ensure_vec(conn: Any, dim: int) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS knowledge_vec_{dim} (chunk_id INTEGER PRIMARY KEY, "
        "kb_id INTEGER NOT NULL, file_id INTEGER NOT NULL, embedding BLOB NOT NULL)"
    )
    conn.execute(f"CREATE INDEX IF NOT EXISTS ix_knowledge_vec_{dim}_kb ON knowledge_vec_{dim} (kb_id)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS ix_knowledge_vec_{dim}_file ON knowledge_vec_{dim} (file_id)")
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_vecf_{dim} USING vec0(chunk_id INTEGER PRIMARY KEY, "
        f"kb_id INTEGER PARTITION KEY, embedding FLOAT[{dim}] distance_metric=cosine)"
    )
    if dim % 8 == 0:
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_vecbit_{dim} USING vec0("
            f"chunk_id INTEGER PRIMARY KEY, kb_id INTEGER PARTITION KEY, embedding BIT[{dim}])"
        )


def _delete_vectors(conn: Any, column: str, values: Sequence[int]) -> None:
    """Delete the vectors of some chunks, files or bases from every dimension's tables."""
    for dim in _vec_dims(conn):
        table = f"knowledge_vec_{dim}"
        for start in range(0, len(values), 500):
            part = list(values[start : start + 500])
            where = f"{column} IN ({_marks(part)})"
            ids = [row[0] for row in conn.execute(f"SELECT chunk_id FROM {table} WHERE {where}", part)]
            # by rowid, one at a time: vec0 would scan itself for `chunk_id IN (...)`
            conn.executemany(f"DELETE FROM knowledge_vecf_{dim} WHERE chunk_id = ?", [(i,) for i in ids])
            if dim % 8 == 0:
                conn.executemany(f"DELETE FROM knowledge_vecbit_{dim} WHERE chunk_id = ?", [(i,) for i in ids])
            conn.execute(f"DELETE FROM {table} WHERE {where}", part)


def _check_dimensions(conn: Any, kb_ids: set[int], dim: int) -> None:
    rows = conn.execute(
        f"SELECT id, embedding_dim FROM knowledge_bases WHERE id IN ({_marks(list(kb_ids))})", list(kb_ids)
    ).fetchall()
    for kb_id, stored in rows:
        check_kb_dimension(kb_id, stored, dim)
        conn.execute(
            "UPDATE knowledge_bases SET embedding_dim = ? WHERE id = ? AND embedding_dim IS NULL", (dim, kb_id)
        )


class SqliteIndex(KnowledgeIndex):
    """FTS5 + sqlite-vec on the app's SQLite file, through connections of its own."""

    TEXT_BUDGET = TEXT_BUDGET  # most passages one full-text search scores (index.prune_terms)
    OVERSAMPLE = 8  # binary candidates per wanted result (at least MIN_CANDIDATES)
    MIN_CANDIDATES = 100

    def __init__(self, url: str) -> None:
        path = url.split("///", 1)[-1].split("?", 1)[0]
        self.exact_limit = get_settings().knowledge_exact_search_limit  # vectors searched exactly, at most
        self._writer = _Connection(path, "index-writer")
        self._reader = _Connection(path, "index-text")  # two readers: retrieval runs both searches at once
        self._vector_reader = _Connection(path, "index-vector")
        self._ready = False

    @property
    def vectors_available(self) -> bool:
        return vec_loadable()

    async def _ensure(self) -> None:
        if not self._ready:
            await self._writer.run(lambda conn: [conn.execute(statement) for statement in FTS_DDL])
            self._ready = True

    async def _write(self, fn: Callable[..., None], *args: Any) -> None:
        await self._ensure()

        def transaction(conn: Any) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                fn(conn, *args)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._writer.run(transaction)

    async def add(self, chunks: Sequence[KnowledgeChunk], vectors: Sequence[Sequence[float]] | None) -> None:
        dim = check_batch(chunks, vectors)
        if not chunks:
            return
        rows = [(chunk.id, index_terms(chunk.text), chunk.kb_id, chunk.file_id) for chunk in chunks]
        await self._write(self._add, rows, dim, vectors)

    def _add(self, conn: Any, rows: list[tuple[Any, ...]], dim: int | None, vectors: Any) -> None:
        ids = [row[0] for row in rows]
        conn.execute(f"DELETE FROM knowledge_fts WHERE rowid IN ({_marks(ids)})", ids)
        conn.executemany("INSERT INTO knowledge_fts (rowid, terms, kb_id, file_id) VALUES (?, ?, ?, ?)", rows)
        if not vec_loadable():
            return
        _delete_vectors(conn, "chunk_id", ids)
        if dim is None:
            return
        _check_dimensions(conn, {row[2] for row in rows}, dim)
        _ensure_vec(conn, dim)
        data = [(row[0], row[2], row[3], _blob(vector)) for row, vector in zip(rows, vectors, strict=True)]
        conn.executemany(
            f"INSERT INTO knowledge_vec_{dim} (chunk_id, kb_id, file_id, embedding) VALUES (?,?,?,?)", data
        )
        conn.executemany(
            f"INSERT INTO knowledge_vecf_{dim} (chunk_id, kb_id, embedding) VALUES (?, ?, ?)",
            [(row[0], row[1], row[3]) for row in data],
        )
        if dim % 8 == 0:
            conn.executemany(
                f"INSERT INTO knowledge_vecbit_{dim} (chunk_id, kb_id, embedding) VALUES (?,?,vec_quantize_binary(?))",
                [(row[0], row[1], row[3]) for row in data],
            )

    async def delete_file(self, file_id: int) -> None:
        await self._write(self._delete, "file_id", file_id)

    async def delete_kb(self, kb_id: int) -> None:
        await self._write(self._delete, "kb_id", kb_id)

    def _delete(self, conn: Any, column: str, value: int) -> None:
        conn.execute(f"DELETE FROM knowledge_fts WHERE {column} = ?", (value,))
        if vec_loadable():
            _delete_vectors(conn, column, [value])

    async def search_text(self, kb_ids: Sequence[int], query: str, k: int) -> list[tuple[int, float]]:
        terms = query_terms(query)
        if not kb_ids or not terms or k <= 0:
            return []
        await self._ensure()
        return await self._reader.run(self._search_text, list(kb_ids), terms, k)

    def _search_text(self, conn: Any, kb_ids: list[int], terms: list[str], k: int) -> list[tuple[int, float]]:
        """bm25 over the passages holding any of the query's (pruned) terms."""
        sql = f"SELECT term, doc FROM knowledge_fts_vocab WHERE term IN ({_marks(terms)})"
        kept = prune_terms(terms, dict(conn.execute(sql, terms).fetchall()), self.TEXT_BUDGET)
        if not kept:
            return []
        expression = " OR ".join(f'"{term}"' for term in kept)
        sql = (
            "SELECT rowid, -bm25(knowledge_fts) FROM knowledge_fts WHERE knowledge_fts MATCH ? "
            f"AND kb_id IN ({_marks(kb_ids)}) ORDER BY rank LIMIT ?"
        )
        return [(int(chunk_id), float(score)) for chunk_id, score in conn.execute(sql, [expression, *kb_ids, k])]

    async def search_vector(self, kb_ids: Sequence[int], vector: Sequence[float], k: int) -> list[tuple[int, float]]:
        if not kb_ids or not vector or k <= 0:
            return []
        await self._ensure()
        if not vec_loadable():
            return []
        return await self._vector_reader.run(self._search_vector, list(kb_ids), _blob(vector), len(vector), k)

    def _search_vector(self, conn: Any, kb_ids: list[int], blob: bytes, dim: int, k: int) -> list[tuple[int, float]]:
        if dim not in _vec_dims(conn):
            return []
        table, marks = f"knowledge_vec_{dim}", _marks(kb_ids)
        few = f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE kb_id IN ({marks}) LIMIT ?)"  # stops early
        (count,) = conn.execute(few, [*kb_ids, self.exact_limit + 1]).fetchone()
        if count <= self.exact_limit or dim % 8:
            return self._exact(conn, kb_ids, blob, dim, k)
        params = self._candidates(conn, kb_ids, blob, dim, k)
        sql = (
            f"SELECT chunk_id, vec_distance_cosine(embedding, ?) AS d FROM {table} "
            f"WHERE chunk_id IN ({_marks(params)}) ORDER BY d LIMIT ?"
        )
        rows = conn.execute(sql, [blob, *params, k]).fetchall()
        return [(int(chunk_id), float(distance)) for chunk_id, distance in rows]

    def _exact(self, conn: Any, kb_ids: list[int], blob: bytes, dim: int, k: int) -> list[tuple[int, float]]:
        """The k nearest by cosine over every float vector of the bases (a vec0 scan per base)."""
        sql = f"SELECT chunk_id, distance FROM knowledge_vecf_{dim} WHERE embedding MATCH ? AND k = ? AND kb_id = ?"
        found: list[tuple[float, int]] = []
        for kb_id in kb_ids:  # sqlite-vec 0.1.9 reads only the first value of `kb_id IN (...)`: one query per base
            found += [(distance, chunk_id) for chunk_id, distance in conn.execute(sql, (blob, k, kb_id))]
        return [(int(chunk_id), float(distance)) for distance, chunk_id in sorted(found)[:k]]

    def _candidates(self, conn: Any, kb_ids: list[int], blob: bytes, dim: int, k: int) -> list[int]:
        """Nearest chunks by Hamming distance of the binary vectors, per base (a partition each)."""
        wanted = min(4096, max(self.MIN_CANDIDATES, k * self.OVERSAMPLE))
        # sqlite-vec's cost grows with k: each base gives twice its even share of the candidates (at least 40)
        per_base = min(wanted, max(40, 2 * wanted // len(kb_ids)))
        sql = (
            f"SELECT chunk_id, distance FROM knowledge_vecbit_{dim} "
            "WHERE embedding MATCH vec_quantize_binary(?) AND k = ? AND kb_id = ?"
        )
        found: list[tuple[float, int]] = []
        for kb_id in kb_ids:
            found += [(distance, chunk_id) for chunk_id, distance in conn.execute(sql, (blob, per_base, kb_id))]
        return [chunk_id for _, chunk_id in sorted(found)[:wanted]]

    async def close(self) -> None:
        await self._writer.close()
        await self._reader.close()
        await self._vector_reader.close()
