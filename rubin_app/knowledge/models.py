"""Knowledge tables: bases, their files (which are also the ingestion jobs) and the files' chunks.

The search structures (full-text and vector indexes) live beside these tables and are kept by
rubin_app.knowledge.index: the vector tables depend on the embedding model's dimension and on what the
database offers (sqlite-vec, pgvector), so they are made at run time, not by a migration.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow


class FileStatus(StrEnum):
    """Where a file is in its ingestion: the job is the file row."""

    queued = "queued"
    extracting = "extracting"
    embedding = "embedding"
    ready = "ready"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE_STATUSES = (FileStatus.queued, FileStatus.extracting, FileStatus.embedding)


class KnowledgeBase(SQLModel, table=True):
    """A named set of documents owned by a user; `shared` when an admin published it to everyone."""

    __tablename__ = "knowledge_bases"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    shared: bool = Field(default=False, index=True)
    embedding_model: str = Field(default="", max_length=200)  # the model its vectors were made with
    embedding_dim: int | None = None  # known after the first embedded chunk
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class KnowledgeFile(SQLModel, table=True):
    """An uploaded document and its ingestion job (status, progress, error)."""

    __tablename__ = "knowledge_files"
    __table_args__ = (UniqueConstraint("kb_id", "sha256", name="uq_knowledge_files_kb_sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    kb_id: int = Field(foreign_key="knowledge_bases.id", index=True, ondelete="CASCADE")
    owner_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    filename: str = Field(max_length=255)
    kind: str = Field(default="", max_length=16)  # pdf, docx, ... (by content)
    size: int = 0
    sha256: str = Field(max_length=64)
    status: str = Field(default=FileStatus.queued, max_length=16, index=True)
    progress: float = 0.0  # 0..1
    chunk_count: int = 0
    pages: int | None = None
    error: str = Field(default="", max_length=32)  # a code (knowledge_error_<code> in the i18n files)
    error_detail: str = Field(default="", max_length=2000)
    claimed_at: datetime | None = None  # when a worker took the job; stale claims are taken again
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class KnowledgeChunk(SQLModel, table=True):
    """A passage of a file: what retrieval finds, cites and shows highlighted."""

    __tablename__ = "knowledge_chunks"

    id: int | None = Field(default=None, primary_key=True)
    file_id: int = Field(foreign_key="knowledge_files.id", index=True, ondelete="CASCADE")
    kb_id: int = Field(index=True)
    owner_id: int = Field(index=True)
    ordinal: int = 0
    text: str = Field(sa_column=Column(Text, nullable=False))
    heading: str = Field(default="", max_length=1000)
    page: int | None = None
    start: int = 0
    end: int = 0
    tokens: int = 0
