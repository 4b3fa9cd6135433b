"""A small deterministic embedder for the knowledge tests, and writers of knowledge rows."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Literal

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.knowledge.analyzer import STOPWORDS, stem, words
from rubin_app.knowledge.index import KnowledgeIndex
from rubin_app.knowledge.models import FileStatus, KnowledgeBase, KnowledgeChunk, KnowledgeFile


def _bucket(feature: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    return value % dim, 1.0 if value >> 63 else -1.0


def hashed_embedding(text: str, dim: int = 256) -> list[float]:
    """Hashed bag of word stems and in-word character trigrams, L2-normalised: similar texts are close."""
    vector = [0.0] * dim
    for word in words(text):
        if word in STOPWORDS:
            continue
        features = [("s:" + stem(word), 1.0)]
        padded = f"#{word}#"
        features += [("t:" + padded[i : i + 3], 0.4) for i in range(len(padded) - 2)]
        for feature, weight in features:
            index, sign = _bucket(feature, dim)
            vector[index] += sign * weight
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class HashEmbedder:
    """Stands where rubin_app.llm.embeddings.Embedder will: `embed(texts, kind=...)`, optionally failing."""

    def __init__(
        self, dim: int = 256, *, model: str = "hash-test", fail: bool = False, languages: frozenset[str] | None = None
    ) -> None:
        self.dim = dim
        self.languages = languages
        self.model = model
        self.fail = fail
        self.calls = 0

    async def embed(self, texts: list[str], *, kind: Literal["query", "document"] = "document") -> list[list[float]]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("embedding server down")
        return [hashed_embedding(text, self.dim) for text in texts]


async def make_kb(session: AsyncSession, *, owner_id: int, name: str = "docs", shared: bool = False) -> KnowledgeBase:
    kb = KnowledgeBase(owner_id=owner_id, name=name, shared=shared, embedding_model="hash-test")
    session.add(kb)
    await session.flush()
    return kb


async def add_file(
    session: AsyncSession,
    index: KnowledgeIndex,
    kb: KnowledgeBase,
    texts: Sequence[str],
    *,
    filename: str = "doc.txt",
    embedder: HashEmbedder | None = None,
    status: FileStatus = FileStatus.ready,
) -> tuple[KnowledgeFile, list[KnowledgeChunk]]:
    """A file with one chunk per text, saved (committed) and indexed with the embedder's vectors."""
    assert kb.id is not None
    file = KnowledgeFile(kb_id=kb.id, owner_id=kb.owner_id, filename=filename, sha256=hashlib.sha256(
        (filename + "".join(texts)).encode()).hexdigest(), status=status, chunk_count=len(texts))  # fmt: skip
    session.add(file)
    await session.flush()
    assert file.id is not None
    chunks = [
        KnowledgeChunk(file_id=file.id, kb_id=kb.id, owner_id=kb.owner_id, ordinal=i, text=text, heading=f"Part {i}")
        for i, text in enumerate(texts)
    ]
    session.add_all(chunks)
    await session.commit()  # the index's own connection must see the rows (SQLite) / reference them (PostgreSQL)
    vectors = await embedder.embed(list(texts)) if embedder else None
    await index.add(chunks, vectors)
    return file, chunks
