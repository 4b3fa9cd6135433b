"""Rubin's own pipeline for the quality benchmark: extract + chunk, the bundled embedder, KnowledgeIndex on SQLite.

Everything here goes through the app's modules (rubin_app.knowledge.extract/chunking/models/index/retrieval,
rubin_app.llm.embeddings, rubin_app.embed_server); `RubinPipeline` exposes one retriever per mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
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
    failed: dict[str, str] = field(default_factory=dict)  # document -> "code: message"

    @property
    def total_s(self) -> float:
        """Extraction + chunking, embedding and indexing together."""
        return self.extract_s + self.embed_s + self.index_s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Any, timeout: float) -> None:
    """Poll /health until the server answers; its stderr in the error when it exits or times out."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/health", timeout=2)).status_code == 200:
                    return
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"the embedding server did not start: {log.read().decode(errors='replace')[-800:]}")
            await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def embedding_server(timeout: float = 180.0) -> AsyncIterator[str]:
    """Start the bundled embedding server (python -m rubin_app.embed_server) on a free port; yield its URL."""
    port = _free_port()
    with tempfile.TemporaryFile() as log:  # not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(
            [sys.executable, "-m", "rubin_app.embed_server", "--port", str(port)],
            env={**os.environ, "EMBEDDING_PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            await _wait_ready(f"http://127.0.0.1:{port}", proc, log, timeout)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()


class RubinPipeline:
    """The documents ingested into one knowledge base; `search` retrieves from it in a given mode."""

    def __init__(self, workdir: Path, embedder: Any) -> None:
        self.workdir = workdir
        self.embedder = embedder
        self.timings = Timings()
        self.sync_url = f"sqlite:///{workdir / 'quality.db'}"
        self.async_url = f"sqlite+aiosqlite:///{workdir / 'quality.db'}"
        self.engine: Any = None
        self.index: Any = None
        self.maker: Any = None
        self.user_id = 0
        self.kb_id = 0

    async def setup(self) -> None:
        """A fresh database at the newest schema, one user and one knowledge base."""
        from sqlalchemy.ext.asyncio import async_sessionmaker
        from sqlmodel.ext.asyncio.session import AsyncSession

        from rubin_app.knowledge.index import knowledge_index
        from rubin_app.knowledge.models import KnowledgeBase
        from rubin_app.models import User
        from rubin_app.services.db import make_engine
        from rubin_app.services.migrate import upgrade_head

        await asyncio.to_thread(upgrade_head, self.sync_url)
        self.engine = make_engine(self.async_url)
        self.maker = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        async with self.maker() as session:
            user = User(external_id="quality-bench", display_name="Quality bench")
            session.add(user)
            await session.flush()
            kb = KnowledgeBase(owner_id=user.id, name="Debian documentation", embedding_model=EMBED_MODEL)
            session.add(kb)
            await session.commit()
            self.user_id, self.kb_id = int(user.id), int(kb.id)  # type: ignore[arg-type]
        self.index = knowledge_index(self.async_url)

    async def ingest(self, cache: Path, docs: list[Path], *, batch: int = 256) -> Timings:
        """Extract, chunk, embed and index every document; returns the timings."""
        from rubin_app.knowledge.chunking import chunk
        from rubin_app.knowledge.extract import ExtractError, extract

        pending: list[tuple[Path, bytes, Any, list[Any]]] = []
        t = self.timings
        for path in docs:
            data = path.read_bytes()
            start = time.perf_counter()
            try:
                extracted = await asyncio.to_thread(
                    extract, data, path.name, max_bytes=MAX_BYTES, max_expanded_bytes=4 * MAX_BYTES
                )
            except ExtractError as exc:  # the file fails, as in the ingestion job; its questions become misses
                t.failed[str(path.relative_to(cache))] = f"{exc.code}: {exc.message}"
                continue
            chunks = chunk(extracted)
            t.extract_s += time.perf_counter() - start
            chars = sum(len(s.text) for s in extracted.sections)
            t.pages += extracted.pages or math.ceil(chars / CHARS_PER_PAGE)
            t.per_kind[extracted.kind] = t.per_kind.get(extracted.kind, 0) + 1
            pending.append((path, data, extracted, chunks))
        for start_at in range(0, len(pending), 8):
            await self._store(cache, pending[start_at : start_at + 8], batch)
        if self.embedder is not None:
            await self._record_dimension()
        return t

    async def _record_dimension(self) -> None:
        """Store the embedder's dimension on the base, as the ingestion job does (retrieve() compares it)."""
        from rubin_app.knowledge.models import KnowledgeBase

        async with self.maker() as session:
            kb = await session.get(KnowledgeBase, self.kb_id)
            assert kb is not None
            kb.embedding_dim = self.embedder.dimension
            session.add(kb)
            await session.commit()

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
            vectors = await self.embedder.embed([r.text for r in part]) if self.embedder is not None else None
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

    async def search(self, query: str, k: int, *, modes: tuple[str, ...], floor: bool = True) -> list[str]:
        """retrieve() as the chat calls it, restricted to `modes` ("text", "vector"; both = hybrid, fused by
        reciprocal rank), with the relevance floor (KNOWLEDGE_MIN_RELEVANCE) or without it."""
        from rubin_app.knowledge.retrieval import retrieve

        async with self.maker() as session:
            passages = await retrieve(
                session=session, index=self.index, user_id=self.user_id, query=query, kb_ids=[self.kb_id],
                embedder=self.embedder, k=k, modes=modes, min_score=None if floor else float("-inf"),
            )  # fmt: skip
        return [p.text for p in passages]

    async def aclose(self) -> None:
        """Close the index and the engine."""
        if self.index is not None:
            await self.index.close()
        if self.engine is not None:
            await self.engine.dispose()
