"""The ingestion job: each queued KnowledgeFile row is a job; every worker runs a loop that claims one at a time.

A claim is an atomic conditional update (status, `attempts` as the claim's token, `claimed_at` kept fresh by a
heartbeat), so one worker works on a file; a claim whose worker died goes stale and is taken again (restart mid-job
starts that file over: its partial chunks are removed first). Per file: extract (in a thread) -> chunk -> embed in
batches -> chunk rows (committed) -> index, with the progress written per batch and a cancel honoured between
batches. A failure fails that file only, with an error code the UI translates (`knowledge_error_<code>`), and
removes only what was indexed of that file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, update
from sqlmodel import col, select

from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.core.waiting import stop_task, wait_event
from rubin_app.knowledge import claims, tombstones, uploads
from rubin_app.knowledge.claims import Claim, Lost
from rubin_app.knowledge.models import ACTIVE_STATUSES, FileStatus, KnowledgeBase, KnowledgeChunk, KnowledgeFile
from rubin_app.knowledge.parts import Chunk, Parts, default_parts
from rubin_app.knowledge.service import Scope
from rubin_app.models import AppSetting
from rubin_app.services.db import session_scope

log = logging.getLogger(__name__)

STALE_SECONDS = 90.0  # a claim not refreshed for this long belongs to a worker that died
POLL_SECONDS = 2.0  # how often an idle worker looks for queued files (an upload here wakes it at once)
SWEEP_SECONDS = 900.0  # how often stored uploads nobody waits for are looked for
BATCH_SIZE = 16  # chunks embedded and indexed per step (a cancel is seen between steps)
MAX_ATTEMPTS = 3  # a file whose worker keeps dying (a crash in a parser) fails instead of looping
EXTRACT_SHARE = 0.1  # the part of the progress bar extraction and chunking stand for
EXPANSION = 10  # unpacked contents may be this many times the file's size (docs/ingestion.md advises about 10)
# Error codes of the job itself (extraction's own: rubin_app.knowledge.extract.ExtractError.code). The UI shows
# the i18n text `knowledge_error_<code>`; these keys are listed so the catalog test finds them in the code.
JOB_ERROR_KEYS = (
    "knowledge_error_embedding_unreachable", "knowledge_error_embedding_wrong_dimension",
    "knowledge_error_embedding_bad_response", "knowledge_error_embedding_too_long",
    "knowledge_error_embedding_not_configured", "knowledge_error_embedding_model_changed",
    "knowledge_error_no_text", "knowledge_error_upload_missing", "knowledge_error_interrupted",
    "knowledge_error_internal",
)  # fmt: skip


class FileFailed(Exception):
    """This file cannot be ingested: `code` for the UI, `detail` for the curious (no document text)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code, self.detail = code, detail[:2000]


def _needs_heading(chunk: Chunk) -> bool:
    last = chunk.heading.rsplit("›", 1)[-1].strip()
    return bool(last) and not chunk.text.lstrip().startswith(last)


class IngestionJob:
    """This worker's ingestion loop; `parts` (or a factory of them) defaults to the real modules."""

    def __init__(
        self, settings: Settings, scope: Scope = session_scope, parts: Parts | Callable[[], Parts] | None = None, *,
        poll_seconds: float = POLL_SECONDS, stale_seconds: float = STALE_SECONDS, batch_size: int = BATCH_SIZE,
        client_for: Callable[[str], Any] | None = None,
    ) -> None:  # fmt: skip
        self.settings, self.scope, self.client_for = settings, scope, client_for
        self._parts: Parts | None = parts if isinstance(parts, Parts) else None
        self._factory: Callable[[], Parts] | None = None if isinstance(parts, Parts) else parts
        self.poll_seconds, self.stale_seconds, self.batch_size = poll_seconds, stale_seconds, batch_size
        self._wake = asyncio.Event()
        self._started_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def parts(self) -> Parts:
        """Extraction, chunking, embedder and index (built on first use)."""
        if self._parts is None:
            self._parts = self._factory() if self._factory else default_parts(self.settings, client_for=self.client_for)
        return self._parts

    def wake(self) -> None:
        """A file was queued: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Start this worker's loop. Without Redis there is one worker: whatever a previous process left claimed
        is taken up at once instead of when its claim goes stale."""
        if self._task is None:
            self._started_at = None if self.settings.redis_url else utcnow()
            self._task = asyncio.create_task(self._loop(), name="knowledge-ingestion")

    async def stop(self) -> None:
        """Stop the loop (a file in progress is left claimed and taken again once its claim is stale); close the
        embedder's connections."""
        if self._task is not None:
            if not await stop_task(self._task):
                log.warning("knowledge ingestion: its loop did not stop; left behind")
            self._task = None
        close = getattr(self._parts.embedder, "aclose", None) if self._parts is not None else None
        if close is not None:
            with contextlib.suppress(Exception):
                await close()

    async def _loop(self) -> None:
        swept: float | None = None
        failures = 0
        while True:
            if swept is None or time.monotonic() - swept > SWEEP_SECONDS:
                swept = time.monotonic()
                with contextlib.suppress(Exception):
                    await self.sweep()
            self._wake.clear()
            try:
                await self.run_once()
                failures = 0
            except Exception as exc:  # the database away, say: back off, and say so once per streak
                failures += 1
                if failures == 1:
                    log.error("knowledge ingestion cannot look for work (%s); retrying", type(exc).__name__)
            wait = min(60.0, self.poll_seconds * 2 ** min(failures, 6)) if failures else self.poll_seconds
            await wait_event(self._wake, wait)

    async def forget_deleted_owners(self) -> int:
        """Remove from the index the bases of deleted accounts (tombstones.py); how many bases."""
        async with self.scope() as session:
            waiting = await tombstones.pending(session=session)
        for key, kb_ids in waiting.items():
            for kb_id in kb_ids:
                await self.parts.index.delete_kb(kb_id)
            async with self.scope() as session:
                await session.exec(delete(AppSetting).where(col(AppSetting.key) == key))
        return sum(len(ids) for ids in waiting.values())

    async def run_once(self) -> int:
        """Claim and ingest files until none is due; how many were worked on."""
        await self.forget_deleted_owners()
        done = 0
        while (claim := await self.claim()) is not None:
            await self.process(claim)
            done += 1
        return done

    async def sweep(self) -> int:
        """Delete stored uploads no waiting file needs (a crash between staging and the row); how many."""
        async with self.scope() as session:
            stmt = select(KnowledgeFile.id).where(col(KnowledgeFile.status).in_(list(ACTIVE_STATUSES)))
            waiting = {i for i in (await session.exec(stmt)).all() if i is not None}
        gone = await asyncio.to_thread(uploads.leftovers, self.settings, waiting)
        for path in gone:
            uploads.discard(path)
        return len(gone)

    async def claim(self) -> Claim | None:
        """Take one queued (or stale) file for this worker, atomically; None: nothing to do."""
        return await claims.claim_next(self.scope, self.stale_seconds, not_after=self._started_at)

    async def _touch(self, claim: Claim, **values: Any) -> None:
        await claims.touch(self.scope, claim, **values)

    async def _heartbeat(self, claim: Claim) -> None:
        while True:
            await asyncio.sleep(self.stale_seconds / 4)
            with contextlib.suppress(Lost, Exception):
                await self._touch(claim)

    async def process(self, claim: Claim) -> None:
        """Ingest one claimed file to its end: ready, failed, cancelled, or given up (taken over, deleted)."""
        beat = asyncio.create_task(self._heartbeat(claim))
        try:
            await self._clear_partial(claim.file_id)
            if claim.attempt > MAX_ATTEMPTS:
                raise FileFailed("interrupted", f"its ingestion was interrupted {MAX_ATTEMPTS} times")
            await self._ingest(claim)
        except Lost:
            await self._after_loss(claim)
        except FileFailed as exc:
            await self._fail(claim, exc.code, exc.detail)
        except asyncio.CancelledError:
            raise  # the worker stops: the claim goes stale and another worker (or the next start) takes it
        except Exception as exc:
            if getattr(exc, "code", "") == "wrong_dimension":  # the index's own check (KnowledgeIndexError)
                await self._fail(claim, "embedding_wrong_dimension", str(getattr(exc, "message", exc)))
                return
            log.exception("knowledge file %s failed to ingest", claim.file_id)
            await self._fail(claim, "internal", type(exc).__name__)
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)

    async def _ingest(self, claim: Claim) -> None:
        async with self.scope() as session:
            row = await session.get(KnowledgeFile, claim.file_id)
            if row is None:
                raise Lost
            filename, kb_id = row.filename, row.kb_id
        pieces, kind, pages = await self._extract(claim.file_id, filename)
        await self._touch(claim, status=FileStatus.embedding, kind=kind[:16], pages=pages, progress=EXTRACT_SHARE)
        await self._check_model(claim.file_id, kb_id)
        done = 0
        for start in range(0, len(pieces), self.batch_size):
            batch = list(pieces[start : start + self.batch_size])
            vectors = await self._embed(batch)
            done += len(batch)
            progress = EXTRACT_SHARE + (1 - EXTRACT_SHARE) * done / len(pieces)
            rows = await self._save(claim, kb_id, batch, vectors, progress)
            await self.parts.index.add(rows, vectors)
        await self._touch(claim, status=FileStatus.ready, progress=1.0, chunk_count=len(pieces), claimed_at=None)
        uploads.drop(self.settings, claim.file_id)

    async def _extract(self, file_id: int, filename: str) -> tuple[Sequence[Chunk], str, int | None]:
        data = await asyncio.to_thread(uploads.read, self.settings, file_id)
        if data is None:
            raise FileFailed("upload_missing", "the uploaded bytes are no longer in the data directory")
        parts = self.parts
        limit = uploads.max_bytes(self.settings)
        try:
            extracted = await asyncio.to_thread(
                parts.extract, data, filename, max_bytes=limit, max_expanded_bytes=limit * EXPANSION
            )
            del data
            pieces = await asyncio.to_thread(parts.chunk, extracted)
        except parts.extract_error as exc:
            raise FileFailed(str(getattr(exc, "code", "corrupt")), str(getattr(exc, "message", exc))) from None
        pieces = [p for p in pieces if p.text.strip()]
        if not pieces:
            raise FileFailed("no_text", "no text was found in the document")
        return pieces, extracted.kind, extracted.pages

    async def _check_model(self, file_id: int, kb_id: int) -> None:
        """Refuse to mix vectors of two embedding models in one base (its other files were made with the first)."""
        model = self.parts.embedding_model
        async with self.scope() as session:
            base = await session.get(KnowledgeBase, kb_id)
            others = exists().where(col(KnowledgeChunk.kb_id) == kb_id, col(KnowledgeChunk.file_id) != file_id)
            used = bool((await session.exec(select(others))).first())
        if base is not None and used and base.embedding_model and model and base.embedding_model != model:
            raise FileFailed(
                "embedding_model_changed",
                f"this base's vectors were made with {base.embedding_model!r}, the embedding model is now {model!r}",
            )

    async def _embed(self, batch: list[Chunk]) -> list[list[float]] | None:
        embedder = self.parts.embedder
        if embedder is None:
            return None  # embeddings switched off: full-text search only
        # The heading path goes with the passage (a passage deep in a section keeps its topic), once.
        texts = [f"{c.heading}\n\n{c.text}" if _needs_heading(c) else c.text for c in batch]
        try:
            vectors = await embedder.embed(texts, kind="document")
        except self.parts.embedding_error as exc:
            code = str(getattr(exc, "code", "bad_response"))
            raise FileFailed(f"embedding_{code}", str(getattr(exc, "message", exc))) from None
        if len(vectors) != len(batch) or len({len(v) for v in vectors}) != 1:
            raise FileFailed("embedding_bad_response", "the embedding server returned other vectors than asked for")
        return vectors

    async def _save(
        self, claim: Claim, kb_id: int, batch: list[Chunk], vectors: list[list[float]] | None, progress: float
    ) -> list[KnowledgeChunk]:
        """Chunk rows and the progress in one transaction (only while the claim is ours); the rows, with ids."""
        async with self.scope() as session:
            now = utcnow()
            moved = await session.exec(
                update(KnowledgeFile)
                .where(claims.ours(claim))
                .values(progress=progress, claimed_at=now, updated_at=now)
            )
            if moved.rowcount != 1:
                raise Lost
            base = await session.get(KnowledgeBase, kb_id)
            if base is None:
                raise Lost
            if vectors:
                self._check_dimension(base, len(vectors[0]))
            owner = (await session.get(KnowledgeFile, claim.file_id)).owner_id  # type: ignore[union-attr]
            rows = [
                KnowledgeChunk(
                    file_id=claim.file_id, kb_id=kb_id, owner_id=owner, ordinal=c.ordinal, text=c.text,
                    heading=c.heading[:1000], page=c.page, start=c.start, end=c.end, tokens=c.tokens,
                )
                for c in batch
            ]  # fmt: skip
            session.add_all(rows)
            await session.flush()
        return rows

    def _check_dimension(self, base: KnowledgeBase, dim: int) -> None:
        if base.embedding_dim is None:
            base.embedding_dim, base.embedding_model = dim, self.parts.embedding_model[:200]
        elif base.embedding_dim != dim:
            raise FileFailed(
                "embedding_wrong_dimension",
                f"the embedding model returned {dim}-dimensional vectors; this base holds {base.embedding_dim}",
            )

    async def _clear_partial(self, file_id: int) -> None:
        """Remove what an earlier attempt indexed of this file (nothing of any other file)."""
        async with self.scope() as session:
            gone = await session.exec(delete(KnowledgeChunk).where(col(KnowledgeChunk.file_id) == file_id))
            count = gone.rowcount
        if count:
            await self.parts.index.delete_file(file_id)

    async def _fail(self, claim: Claim, code: str, detail: str) -> None:
        log.warning("knowledge file %s failed: %s", claim.file_id, code)
        with contextlib.suppress(Exception):
            await self._clear_partial(claim.file_id)
        try:
            await self._touch(claim, status=FileStatus.failed, error=code[:32], error_detail=detail, claimed_at=None)
        except Lost:
            await self._after_loss(claim)
            return
        uploads.drop(self.settings, claim.file_id)

    async def _after_loss(self, claim: Claim) -> None:
        """Cancelled or deleted: remove what this attempt indexed and the bytes. Taken over: leave it alone."""
        async with self.scope() as session:
            row = await session.get(KnowledgeFile, claim.file_id)
            taken_over = row is not None and row.attempts != claim.attempt and row.status in ACTIVE_STATUSES
        if taken_over:
            return
        await self._clear_partial(claim.file_id)
        if row is None:
            await self.parts.index.delete_file(claim.file_id)
        uploads.drop(self.settings, claim.file_id)
