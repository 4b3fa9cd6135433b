"""Rubin's own pipeline for the quality benchmark: extract + chunk, the bundled embedder, KnowledgeIndex on SQLite.

Everything here goes through the app's modules (rubin_app.knowledge.extract/chunking/models/index/retrieval,
rubin_app.llm.embeddings, rubin_app.embed_server); `RubinPipeline` exposes one retriever per mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.retrieval_docs import CHARS_PER_PAGE

MAX_BYTES = 64 * 1024 * 1024
EMBED_MODEL = "rubin-embed"


@dataclass
class Timings:
    """Where ingestion time went, and how many pages it covered."""

    pages: int = 0
    chunks: int = 0
    extract_s: float = 0.0
    embed_s: float = 0.0
    index_s: float = 0.0
    per_kind: dict[str, int] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        """Extraction + chunking, embedding and indexing together."""
        return self.extract_s + self.embed_s + self.index_s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def embedding_server(timeout: float = 180.0) -> AsyncIterator[str]:
    """Start the bundled embedding server (python -m rubin_app.embed_server) on a free port; yield its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rubin_app.embed_server", "--port", str(port)],
        env={**os.environ, "EMBEDDING_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/health", timeout=2)).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace")[-800:] if proc.stderr else ""
                    raise RuntimeError(f"the embedding server did not start: {err}")
                await asyncio.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


def open_index(sync_url: str, engine: Any) -> Any:
    """The SQLite KnowledgeIndex for this database (the factory's name is looked up: part C owns it)."""
    from rubin_app.knowledge import index as index_module

    for name in ("open_index", "make_index", "index_for", "get_index", "knowledge_index", "create_index"):
        factory: Callable[..., Any] | None = getattr(index_module, name, None)
        if factory is None:
            continue
        params = inspect.signature(factory).parameters
        if "engine" in params:
            return factory(engine=engine)
        if "url" in params or "database_url" in params:
            return factory(**{("url" if "url" in params else "database_url"): sync_url})
        return factory(engine)
    for name in ("SQLiteKnowledgeIndex", "SqliteKnowledgeIndex", "SQLiteIndex"):
        cls = getattr(index_module, name, None)
        if cls is not None:
            return cls(engine) if "engine" in inspect.signature(cls).parameters else cls(sync_url)
    raise RuntimeError("rubin_app.knowledge.index has no SQLite index factory this benchmark knows")


class RubinPipeline:
    """The documents ingested into one knowledge base; `text`, `vector` and `hybrid` retrieve from it."""

    def __init__(self, workdir: Path, embedder: Any) -> None:
        self.workdir = workdir
        self.embedder = embedder
        self.timings = Timings()
        self.sync_url = f"sqlite:///{workdir / 'quality.db'}"
        self.engine: Any = None
        self.index: Any = None
        self.maker: Any = None
        self.user_id = 0
        self.kb_id = 0

    async def setup(self) -> None:
        """A fresh database at the newest schema, one user and one knowledge base."""
        from rubin_app.knowledge.models import KnowledgeBase
        from sqlalchemy.ext.asyncio import async_sessionmaker
        from sqlmodel.ext.asyncio.session import AsyncSession

        from rubin_app.models import User
        from rubin_app.services.db import make_engine
        from rubin_app.services.migrate import upgrade_head

        await asyncio.to_thread(upgrade_head, self.sync_url)
        self.engine = make_engine("sqlite+aiosqlite://" + self.sync_url.removeprefix("sqlite://"))
        self.maker = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        async with self.maker() as session:
            user = User(external_id="quality-bench", display_name="Quality bench")
            session.add(user)
            await session.flush()
            kb = KnowledgeBase(owner_id=user.id, name="Debian documentation", embedding_model=EMBED_MODEL)
            session.add(kb)
            await session.commit()
            self.user_id, self.kb_id = int(user.id), int(kb.id)  # type: ignore[arg-type]
        self.index = open_index(self.sync_url, self.engine)

    async def ingest(self, cache: Path, docs: list[Path], *, batch: int = 256) -> Timings:
        """Extract, chunk, embed and index every document; returns the timings."""
        from rubin_app.knowledge.chunking import chunk
        from rubin_app.knowledge.extract import extract

        pending: list[tuple[Path, bytes, Any, list[Any]]] = []
        t = self.timings
        for path in docs:
            data = path.read_bytes()
            start = time.perf_counter()
            extracted = await asyncio.to_thread(
                extract, data, path.name, max_bytes=MAX_BYTES, max_expanded_bytes=4 * MAX_BYTES
            )
            chunks = chunk(extracted)
            t.extract_s += time.perf_counter() - start
            chars = sum(len(s.text) for s in extracted.sections)
            t.pages += extracted.pages or math.ceil(chars / CHARS_PER_PAGE)
            t.per_kind[extracted.kind] = t.per_kind.get(extracted.kind, 0) + 1
            pending.append((path, data, extracted, chunks))
        for start_at in range(0, len(pending), 8):
            await self._store(cache, pending[start_at : start_at + 8], batch)
        return t

    async def _store(self, cache: Path, group: list[tuple[Path, bytes, Any, list[Any]]], batch: int) -> None:
        """Write file and chunk rows for a few documents, embed their chunks and add them to the index."""
        from rubin_app.knowledge.models import KnowledgeFile

        async with self.maker() as session:
            rows: list[Any] = []
            for path, data, extracted, chunks in group:
                file = KnowledgeFile(
                    kb_id=self.kb_id, owner_id=self.user_id, filename=str(path.relative_to(cache)),
                    kind=extracted.kind, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                    status="ready", progress=1.0, chunk_count=len(chunks), pages=extracted.pages,
                )  # fmt: skip
                session.add(file)
                await session.flush()
                rows += [self._chunk_row(int(file.id), c) for c in chunks]  # type: ignore[arg-type]
            session.add_all(rows)
            await session.commit()
        for at in range(0, len(rows), batch):
            part = rows[at : at + batch]
            start = time.perf_counter()
            vectors = await self.embedder.embed([r.text for r in part], kind="document")
            self.timings.embed_s += time.perf_counter() - start
            start = time.perf_counter()
            await self.index.add(part, vectors)
            self.timings.index_s += time.perf_counter() - start
        self.timings.chunks += len(rows)

    def _chunk_row(self, file_id: int, c: Any) -> Any:
        """A KnowledgeChunk row for one of part B's chunks."""
        from rubin_app.knowledge.models import KnowledgeChunk

        return KnowledgeChunk(
            file_id=file_id, kb_id=self.kb_id, owner_id=self.user_id, ordinal=c.ordinal, text=c.text,
            heading=c.heading, page=c.page, start=c.start, end=c.end, tokens=c.tokens,
        )  # fmt: skip

    async def _texts(self, ids: list[int]) -> list[str]:
        from rubin_app.knowledge.models import KnowledgeChunk
        from sqlmodel import col, select

        async with self.maker() as session:
            found = (await session.exec(select(KnowledgeChunk).where(col(KnowledgeChunk.id).in_(ids)))).all()
        by_id = {c.id: c.text for c in found}
        return [by_id[i] for i in ids if i in by_id]

    async def text(self, query: str, k: int) -> list[str]:
        """Full-text only (FTS5 over the stemmed terms)."""
        hits = await self.index.search_text([self.kb_id], query, k)
        return await self._texts([int(cid) for cid, _ in hits])

    async def vector(self, query: str, k: int) -> list[str]:
        """Vectors only (sqlite-vec, the bundled embedder)."""
        [vec] = await self.embedder.embed([query], kind="query")
        hits = await self.index.search_vector([self.kb_id], vec, k)
        return await self._texts([int(cid) for cid, _ in hits])

    async def hybrid(self, query: str, k: int, *, floor: bool = True) -> list[str]:
        """retrieve(): text + vectors fused by reciprocal rank, with (or without) the relevance floor."""
        from rubin_app.knowledge.retrieval import retrieve

        extra: dict[str, Any] = {}
        if not floor and "min_score" in inspect.signature(retrieve).parameters:
            extra["min_score"] = float("-inf")
        async with self.maker() as session:
            passages = await retrieve(
                session=session, index=self.index, user_id=self.user_id, query=query, kb_ids=[self.kb_id],
                embedder=self.embedder, k=k, **extra,
            )  # fmt: skip
        return [p.text for p in passages]

    async def aclose(self) -> None:
        """Close the index and the engine."""
        close = getattr(self.index, "aclose", None) or getattr(self.index, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result
        if self.engine is not None:
            await self.engine.dispose()
