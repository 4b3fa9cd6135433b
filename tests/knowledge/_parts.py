"""Small stand-ins for the ingestion parts other engineers write (extract/chunk, Embedder, KnowledgeIndex), with the
interfaces of spec.md, so the job, the service and the API can be tested before the merge.

The embedder is real HTTP: it asks the LocalAI stand-in's /v1/embeddings through the app's LLMClient, so "the
embedding server is down" is a closed port, not a flag. The index keeps what it was given in memory, which is
what the tests look at ("nothing already indexed is lost").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rubin_app.knowledge.models import KnowledgeChunk
from rubin_app.knowledge.parts import Parts
from rubin_app.llm.client import LLMClient, LLMError


class ExtractError(Exception):
    """As rubin_app.knowledge.extract.ExtractError."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class EmbeddingError(Exception):
    """As rubin_app.llm.embeddings.EmbeddingError."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Section:
    text: str
    page: int | None = None
    heading: str = ""


@dataclass
class Extracted:
    kind: str
    sections: list[Section]
    pages: int | None = None


@dataclass
class Chunk:
    ordinal: int
    text: str
    page: int | None
    heading: str
    start: int
    end: int
    tokens: int


@dataclass
class Gate:
    """Holds extraction of files whose text contains `marker` until released (a job caught mid-way)."""

    marker: str = "[[hold]]"
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


GATE = Gate()


def extract(data: bytes, filename: str, *, max_bytes: int, max_expanded_bytes: int) -> Extracted:
    """UTF-8 text only: binary content is 'unsupported_type', a NUL-led file 'corrupt', nothing 'empty'."""
    if len(data) > max_bytes:
        raise ExtractError("too_large", "the file is over the size limit")
    if data.startswith(b"\x00"):
        raise ExtractError("corrupt", "the file is damaged")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ExtractError("unsupported_type", "this kind of file is not supported") from None
    if not text.strip():
        raise ExtractError("empty", "the file has no text")
    if GATE.marker in text:
        GATE.entered.set()
        GATE.release.wait(30)
    kind = "markdown" if filename.endswith(".md") else "text"
    return Extracted(kind=kind, sections=[Section(text=p) for p in text.split("\n\n") if p.strip()])


def chunk(extracted: Extracted, *, target_tokens: int = 350, overlap_tokens: int = 50) -> list[Chunk]:
    """One chunk per paragraph."""
    out, pos = [], 0
    for i, section in enumerate(extracted.sections):
        out.append(Chunk(i, section.text, section.page, section.heading, pos, pos + len(section.text),
                         len(section.text.split())))  # fmt: skip
        pos += len(section.text) + 2
    return out


class Embedder:
    """Vectors from an OpenAI-compatible /v1/embeddings (the LocalAI stand-in); a client per call, so it can be used
    from any event loop (the served app's) and leaves no connection open."""

    def __init__(self, base_url: str, model: str = "standin-model") -> None:
        self.base_url = base_url
        self.model = model
        self.calls = 0
        self.fail_after: int | None = None  # raise 'unreachable' from this call on (a server that goes away)

    async def embed(self, texts: list[str], *, kind: Literal["query", "document"] = "document") -> list[list[float]]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise EmbeddingError("unreachable", "the embedding server went away")
        client = LLMClient(self.base_url, connect_timeout=1, read_timeout=5, retries=0)
        try:
            data = await client.embeddings({"model": self.model, "input": texts})
        except LLMError as exc:
            code = "unreachable" if exc.code in ("unreachable", "timeout") else "bad_response"
            raise EmbeddingError(code, f"embedding server: {exc.code}") from None
        finally:
            await client.aclose()
        return [list(map(float, item["embedding"])) for item in data["data"]]


@dataclass
class MemoryIndex:
    """KnowledgeIndex's write side, in memory: chunk id -> (file id, kb id, vector)."""

    entries: dict[int, tuple[int, int, list[float] | None]] = field(default_factory=dict)
    deleted_files: list[int] = field(default_factory=list)
    deleted_kbs: list[int] = field(default_factory=list)

    async def add(self, chunks: list[KnowledgeChunk], vectors: list[list[float]] | None) -> None:
        assert all(c.id is not None for c in chunks)
        for i, c in enumerate(chunks):
            self.entries[int(c.id)] = (c.file_id, c.kb_id, vectors[i] if vectors else None)  # type: ignore[arg-type]

    async def delete_file(self, file_id: int) -> None:
        self.deleted_files.append(file_id)
        self.entries = {k: v for k, v in self.entries.items() if v[0] != file_id}

    async def delete_kb(self, kb_id: int) -> None:
        self.deleted_kbs.append(kb_id)
        self.entries = {k: v for k, v in self.entries.items() if v[1] != kb_id}

    def files(self) -> dict[int, int]:
        """How many entries each file has."""
        counts: dict[int, int] = {}
        for file_id, _, _ in self.entries.values():
            counts[file_id] = counts.get(file_id, 0) + 1
        return counts


def make_parts(embedder: Any, index: MemoryIndex | None = None) -> Parts:
    """Parts of stand-ins (embedder None: full-text only)."""
    return Parts(
        extract=extract, chunk=chunk, index=index or MemoryIndex(), embedder=embedder, extract_error=ExtractError,
        embedding_error=EmbeddingError, embedding_model=getattr(embedder, "model", ""),
    )  # fmt: skip


def paragraphs(n: int, word: str = "ruby") -> bytes:
    """A text document of `n` distinct paragraphs."""
    return "\n\n".join(f"Paragraph {i} about {word} number {i}." for i in range(n)).encode()


def chunk_texts(chunks: Sequence[KnowledgeChunk]) -> list[str]:
    """Their texts, in order."""
    return [c.text for c in sorted(chunks, key=lambda c: c.ordinal)]
