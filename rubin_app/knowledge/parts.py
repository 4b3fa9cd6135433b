"""What the ingestion job is made of: text extraction, chunking, the embedder and the search index.

The job takes them as one `Parts` value (tests pass stand-ins); `default_parts` builds the real ones from
settings, importing their modules only when the first file is ingested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from rubin_app.config import Settings
from rubin_app.knowledge.models import KnowledgeChunk


class Section(Protocol):
    """A piece of extracted text (rubin_app.knowledge.extract.Section)."""

    text: str
    page: int | None
    heading: str


class Extracted(Protocol):
    """A document's text (rubin_app.knowledge.extract.Extracted)."""

    kind: str
    pages: int | None

    @property
    def sections(self) -> Sequence[Section]: ...


class Chunk(Protocol):
    """A passage to embed and index (rubin_app.knowledge.chunking.Chunk)."""

    ordinal: int
    text: str
    page: int | None
    heading: str
    start: int
    end: int
    tokens: int


class Embedder(Protocol):
    """Texts to vectors (rubin_app.llm.embeddings.Embedder)."""

    async def embed(self, texts: list[str], *, kind: Literal["query", "document"] = "document") -> list[list[float]]:
        """L2-normalised vectors, one per text."""
        ...


class Index(Protocol):
    """The search index (rubin_app.knowledge.index.KnowledgeIndex): what ingestion and deletion use."""

    async def add(self, chunks: list[KnowledgeChunk], vectors: list[list[float]] | None) -> None:
        """Index chunk rows (with ids) and their vectors (None: full-text only)."""
        ...

    async def delete_file(self, file_id: int) -> None:
        """Forget a file's chunks."""
        ...

    async def delete_kb(self, kb_id: int) -> None:
        """Forget a base's chunks."""
        ...


@dataclass
class Parts:
    """extract(data, filename, *, max_bytes, max_expanded_bytes) -> Extracted (sync, CPU-bound: run in a thread);
    chunk(extracted) -> list[Chunk]; the errors they raise carry `.code` and `.message`."""

    extract: Callable[..., Extracted]
    chunk: Callable[[Any], Sequence[Chunk]]
    index: Index
    embedder: Embedder | None
    extract_error: type[Exception]
    embedding_error: type[Exception]
    embedding_model: str = ""  # recorded on the base: vectors of two models never mix in one base


def default_parts(settings: Settings, client_for: Callable[[str], Any] | None = None) -> Parts:
    """The real parts: extract/chunk (part B), the embedder of the settings (part A; EMBEDDING_MODEL served by the
    connection `client_for` routes it to), the index of the settings' database (part C)."""
    from rubin_app.knowledge.chunking import chunk  # built on first use
    from rubin_app.knowledge.extract import ExtractError, extract
    from rubin_app.knowledge.index import knowledge_index
    from rubin_app.llm.embeddings import EmbeddingError, default_embedder

    embedder = default_embedder(settings, client_for=client_for)
    return Parts(
        extract=extract, chunk=chunk, index=knowledge_index(), embedder=embedder,
        extract_error=ExtractError, embedding_error=EmbeddingError,
        embedding_model=getattr(embedder, "model", "") if embedder is not None else "",
    )  # fmt: skip
