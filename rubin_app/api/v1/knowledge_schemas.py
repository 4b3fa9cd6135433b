"""What /api/v1/knowledge takes and returns (these models are its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from rubin_app import i18n
from rubin_app.knowledge.models import KnowledgeBase, KnowledgeFile


class BaseOut(BaseModel):
    """A knowledge base: the caller's own, or one an admin shared with everyone."""

    id: int
    name: str
    description: str
    shared: bool
    mine: bool
    embedding_model: str
    embedding_dim: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: KnowledgeBase, user_id: int) -> BaseOut:
        """From the table row, as `user_id` sees it."""
        assert row.id is not None
        return cls(
            id=row.id, name=row.name, description=row.description, shared=row.shared, mine=row.owner_id == user_id,
            embedding_model=row.embedding_model, embedding_dim=row.embedding_dim, created_at=row.created_at,
            updated_at=row.updated_at,
        )  # fmt: skip


class NewBase(BaseModel):
    """A new, private knowledge base."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class BaseUpdate(BaseModel):
    """Rename, describe, or (an admin key) share with everyone / stop sharing; fields left out are kept."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    shared: bool | None = None


class FileOut(BaseModel):
    """A document and its ingestion: status queued → extracting → embedding → ready (or failed / cancelled)."""

    id: int
    kb_id: int
    filename: str
    kind: str
    size: int
    sha256: str
    status: str
    progress: float
    chunk_count: int
    pages: int | None
    error: str = Field(description="An error code when failed (e.g. unsupported_type, embedding_unreachable).")
    error_message: str = Field(description="What the error means, in English.")
    error_detail: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: KnowledgeFile) -> FileOut:
        """From the table row."""
        assert row.id is not None
        message = i18n.EN.get(f"knowledge_error_{row.error}", row.error.replace("_", " ")) if row.error else ""
        return cls(
            id=row.id, kb_id=row.kb_id, filename=row.filename, kind=row.kind, size=row.size, sha256=row.sha256,
            status=row.status, progress=round(row.progress, 4), chunk_count=row.chunk_count, pages=row.pages,
            error=row.error, error_message=message, error_detail=row.error_detail, created_at=row.created_at,
            updated_at=row.updated_at,
        )  # fmt: skip


class UploadRefusal(BaseModel):
    """A file of a multi-file upload that was not accepted."""

    filename: str
    code: str
    message: str


class UploadResult(BaseModel):
    """The accepted files (queued for ingestion) and the refused ones, each with its reason."""

    data: list[FileOut]
    errors: list[UploadRefusal]
