"""The state behind the knowledge page: the user's bases (and the shared ones), the open base's files with their
live ingestion status, uploads (several files at once, with the upload's progress), cancel and delete.

Authority stays server-side: every handler re-checks the session and the service filters by the user, so a forged
event naming another user's base or file is "not found" like a wrong id.
"""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from rubin_app.knowledge import service, uploads
from rubin_app.knowledge.models import ACTIVE_STATUSES, FileStatus, KnowledgeFile
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState

UPLOAD_ID = "kb-upload"
FOLLOW_SECONDS = 0.7  # how often the open base's files are read again while some are being ingested
FOLLOW_MAX = 6 * 3600  # steps before a tab stops following (a tab left open for hours)
STATUS_KEYS = {
    FileStatus.queued: "kb_status_queued",
    FileStatus.extracting: "kb_status_extracting",
    FileStatus.embedding: "kb_status_embedding",
    FileStatus.ready: "kb_status_ready",
    FileStatus.failed: "kb_status_failed",
    FileStatus.cancelled: "kb_status_cancelled",
}


def _size(n: int) -> str:
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{max(1, round(n / 1024))} KB"


class KnowledgeState(AuthState):
    """The signed-in user's knowledge bases; every handler re-checks the session."""

    bases: list[dict[str, str]] = []  # id, name, shared ("1" / ""), mine ("1" / "")
    current: str = ""  # the open base's id
    current_name: str = ""
    current_mine: bool = False
    current_shared: bool = False
    files: list[dict[str, str]] = []
    kb_error: str = ""
    upload_errors: list[str] = []
    uploading: bool = False
    upload_percent: int = 0
    delete_open: bool = False
    max_mb: int = 50
    _following: bool = False

    @rx.var
    def max_bytes(self) -> int:
        """The size limit the drop zone refuses files over (the server checks again)."""
        return self.max_mb * 1048576

    @rx.event
    async def on_load(self) -> Any:
        """Check the session, then read the bases (and open the one in ?kb=, or the first)."""
        principal, events = await self._enter()
        if principal is None:
            return events
        self.max_mb = get_runtime().settings.knowledge_max_file_mb
        self.kb_error, self.upload_errors, self.delete_open = "", [], False
        wanted = self.router.url.query_parameters.get("kb", "") or self.current
        await self._load_bases(wanted)
        return [*events, KnowledgeState.follow]

    async def _load_bases(self, wanted: str = "") -> None:
        principal = await self._require()
        async with session_scope(read_only=True) as session:
            rows = await service.list_bases(session=session, user_id=principal.user_id)
        self.bases = [
            {
                "id": str(b.id),
                "name": b.name,
                "shared": "1" if b.shared else "",
                "mine": "1" if b.owner_id == principal.user_id else "",
            }
            for b in rows
        ]
        ids = [b["id"] for b in self.bases]
        await self._open(wanted if wanted in ids else (ids[0] if ids else ""))

    async def _open(self, kb_id: str) -> None:
        self.current = kb_id
        base = next((b for b in self.bases if b["id"] == kb_id), None)
        self.current_name = base["name"] if base else ""
        self.current_mine, self.current_shared = bool(base and base["mine"]), bool(base and base["shared"])
        await self._refresh_files()

    async def _refresh_files(self) -> bool:
        """Read the open base's files; whether some are still being ingested."""
        if not self.current:
            self.files = []
            return False
        principal = await self._require()
        try:
            async with session_scope(read_only=True) as session:
                rows = await service.list_files(session=session, user_id=principal.user_id, kb_id=int(self.current))
        except InputError:
            self.files, self.current = [], ""
            return False
        self.files = [self._file_view(r) for r in rows]
        return any(r.status in ACTIVE_STATUSES for r in rows)

    def _file_view(self, row: KnowledgeFile) -> dict[str, str]:
        error = ""
        if row.error:
            error = self._t(f"knowledge_error_{row.error}")
            error = error if error != f"knowledge_error_{row.error}" else row.error_detail or row.error
        return {
            "id": str(row.id),
            "filename": row.filename,
            "status": row.status,
            "status_text": self._t(STATUS_KEYS.get(FileStatus(row.status), "kb_status_queued")),
            "progress": str(round(row.progress * 100)),
            "active": "1" if row.status in ACTIVE_STATUSES else "",
            "error": error,
            "size": _size(row.size),
            "chunks": self._t("kb_chunks", count=row.chunk_count) if row.status == FileStatus.ready else "",
        }

    @rx.event(background=True)
    async def follow(self) -> None:
        """Keep the open base's files fresh while some are being ingested (one follower per tab)."""
        async with self:
            if self._following:
                return
            self._following = True
        try:
            for _ in range(FOLLOW_MAX):
                await asyncio.sleep(FOLLOW_SECONDS)
                async with self:
                    if not await self._refresh_files() and not self.uploading:
                        return
        finally:
            async with self:
                self._following = False

    @rx.event
    async def open_base(self, kb_id: str) -> Any:
        """Show another base."""
        self.kb_error, self.upload_errors, self.delete_open = "", [], False
        await self._open(kb_id if any(b["id"] == kb_id for b in self.bases) else "")
        return KnowledgeState.follow

    @rx.event
    async def create(self, form: dict[str, Any]) -> None:
        """A new base, opened at once."""
        principal = await self._require()
        try:
            async with session_scope() as session:
                row = await service.create_base(
                    session=session, user_id=principal.user_id, name=str(form.get("name", ""))
                )
        except InputError as exc:
            self.kb_error = self._t(f"err_{exc.code}", **exc.params)
            return
        self.kb_error = ""
        await self._load_bases(str(row.id))

    @rx.event
    async def rename(self, form: dict[str, Any]) -> None:
        """Rename the open base (its owner)."""
        await self._change(
            lambda session, user: service.update_base(
                session=session, user_id=user, kb_id=int(self.current), name=str(form.get("name", ""))
            )
        )

    @rx.event
    async def toggle_share(self) -> None:
        """Publish the open base to everyone, or take it back (admins; the service checks the role)."""
        shared = not self.current_shared
        await self._change(
            lambda session, user: service.set_shared(
                session=session, actor_id=user, kb_id=int(self.current), shared=shared, ip=self._client_ip()
            )
        )

    async def _change(self, action: Any) -> None:
        principal = await self._require()
        if not self.current:
            return
        try:
            async with session_scope() as session:
                await action(session, principal.user_id)
        except InputError as exc:
            self.kb_error = self._t(f"err_{exc.code}", **exc.params)
            return
        self.kb_error = ""
        await self._load_bases(self.current)

    @rx.event
    def ask_delete(self, open_: bool = True) -> None:
        """Open (or close) the confirmation of deleting the open base."""
        self.delete_open = bool(open_)

    @rx.event
    async def delete_base(self) -> None:
        """Delete the open base with everything in it (its owner)."""
        principal = await self._require()
        self.delete_open = False
        rt = get_runtime()
        try:
            ids = await service.delete_base(
                scope=session_scope,
                index=rt.knowledge.parts.index,
                user_id=principal.user_id,
                kb_id=int(self.current or 0),
            )
        except InputError as exc:
            self.kb_error = self._t(f"err_{exc.code}", **exc.params)
            return
        for file_id in ids:
            uploads.drop(rt.settings, file_id)
        await self._load_bases()

    @rx.event
    def upload_progress(self, progress: dict[str, Any]) -> None:
        """The browser's upload progress (all the dropped files go in one request)."""
        fraction = float(progress.get("progress") or 0)
        # The last report may arrive after the upload's own event has ended: it must not leave a bar behind.
        self.uploading = fraction < 1
        self.upload_percent = min(100, max(0, round(fraction * 100)))

    @rx.event
    async def upload(self, files: list[rx.UploadFile]) -> Any:
        """Store the dropped files in the open base and queue them; a refused file says why, the others go on."""
        principal = await self._require()
        rt = get_runtime()
        self.upload_errors = []
        try:
            if not self.current_mine:
                raise InputError("kb_not_owner" if self.current else "kb_not_found")
            for file in files:
                name = service.clean_filename(file.filename or "")
                try:
                    await uploads.enqueue(
                        scope=session_scope,
                        settings=rt.settings,
                        user_id=principal.user_id,
                        kb_id=int(self.current),
                        filename=name,
                        content=uploads.blocks(file),
                    )
                except InputError as exc:
                    reason = self._t(f"err_{exc.code}", **exc.params)
                    self.upload_errors.append(self._t("kb_rejected", name=name, reason=reason))
        except InputError as exc:
            self.upload_errors = [self._t(f"err_{exc.code}", **exc.params)]
        finally:
            self.uploading, self.upload_percent = False, 0
        rt.knowledge.wake()
        await self._refresh_files()
        return [rx.clear_selected_files(UPLOAD_ID), KnowledgeState.follow]

    @rx.event
    def rejected(self, names: list[str]) -> None:
        """Files the drop zone refused before sending them (over the size limit)."""
        reason = self._t("err_kb_file_too_large", limit_mb=self.max_mb)
        shown = [service.clean_filename(str(n or "")) for n in names[:50]]
        self.upload_errors = [self._t("kb_rejected", name=n, reason=reason) for n in shown]

    @rx.event
    async def cancel_file(self, file_id: str) -> None:
        """Stop a file's ingestion."""
        await self._file_action(file_id, cancel=True)

    @rx.event
    async def delete_file(self, file_id: str) -> None:
        """Delete a file with its passages."""
        await self._file_action(file_id, cancel=False)

    async def _file_action(self, file_id: str, *, cancel: bool) -> None:
        principal = await self._require()
        rt = get_runtime()
        try:
            if cancel:
                await uploads.cancel(
                    scope=session_scope, settings=rt.settings, user_id=principal.user_id, file_id=int(file_id)
                )
            else:
                await service.delete_file(
                    scope=session_scope, index=rt.knowledge.parts.index, user_id=principal.user_id, file_id=int(file_id)
                )
                uploads.drop(rt.settings, int(file_id))
        except (InputError, ValueError) as exc:
            code = exc.code if isinstance(exc, InputError) else "kb_file_not_found"
            self.kb_error = self._t(f"err_{code}")
            return
        self.kb_error = ""
        await self._refresh_files()
