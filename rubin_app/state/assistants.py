"""The assistants page's state: the user's assistants and the shared ones, the editor, sharing (admins),
export and import. Every handler re-checks the session and acts as the signed-in user."""

from __future__ import annotations

from typing import Any

import reflex as rx

from rubin_app.assistants import io
from rubin_app.assistants import service as assistants
from rubin_app.assistants.models import Assistant
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState
from rubin_app.vault.state_seal import open_state, seal_state

CONTENT_VARS = ("items", "form", "import_text")
FIELDS = ("name", "emoji", "description", "base_model", "system_prompt", "temperature", "max_tokens",
          "context_budget", "starters")  # fmt: skip


def _row(a: Assistant, user_id: int) -> dict[str, str]:
    return {
        "id": str(a.id), "model": a.model_name, "name": a.name, "emoji": a.emoji or "🤖", "description": a.description,
        "base_model": a.base_model, "owned": "1" if a.owner_id == user_id else "", "shared": "1" if a.shared else "",
    }  # fmt: skip


def _form_of(a: Assistant | None, default_model: str) -> dict[str, str]:
    if a is None:
        return {f: "" for f in FIELDS} | {"base_model": default_model}
    spec = assistants.spec_from(a)
    num = {k: "" if getattr(spec, k) is None else str(getattr(spec, k)) for k in ("temperature", "max_tokens",
                                                                                 "context_budget")}  # fmt: skip
    return {"name": spec.name, "emoji": spec.emoji, "description": spec.description, "base_model": spec.base_model,
            "system_prompt": spec.system_prompt, "starters": "\n".join(spec.starters), **num}  # fmt: skip


def _fields(form: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {f: str(form.get(f, ""))[:25_000] for f in FIELDS}
    for name in ("temperature", "max_tokens", "context_budget"):
        values[name] = values[name].strip().replace(",", ".") or None
    values["starters"] = [s for s in values["starters"].splitlines() if s.strip()]
    return values


class AssistantsState(AuthState):
    """The assistants page."""

    items: list[dict[str, str]] = []
    models: list[str] = []
    editing: str = ""  # "" closed, "new", or the id of the assistant being edited
    form: dict[str, str] = {}
    error: str = ""
    notice: str = ""
    import_text: str = ""

    def __getstate__(self) -> dict[str, Any]:
        return seal_state(type(self).get_full_name(), super().__getstate__(), CONTENT_VARS)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(open_state(type(self).get_full_name(), state))

    def _err(self, exc: InputError) -> str:
        return self._t(f"err_{exc.code}", **exc.params)

    async def _reload(self, user_id: int) -> None:
        async with session_scope(read_only=True) as session:
            rows = await assistants.list_assistants(session=session, user_id=user_id)
        self.items = [_row(a, user_id) for a in rows]

    @rx.event
    async def on_load(self):
        """Check the session, then read the assistants and the models the user may use."""
        principal, events = await self._enter()
        if principal is None:
            return events
        rt = get_runtime()
        self.models = await rt.catalog.allowed(await rt.permissions.get(principal.user_id))
        await self._reload(principal.user_id)
        self.editing, self.form, self.error, self.notice, self.import_text = "", {}, "", "", ""
        return events

    @rx.event
    async def open_editor(self, assistant_id: str) -> None:
        """Open the editor on a new assistant ("new") or one of the user's own."""
        principal = await self._require()
        found = None
        if assistant_id != "new":
            async with session_scope(read_only=True) as session:
                found = await assistants.get_assistant(
                    session=session, user_id=principal.user_id, assistant_id=int(assistant_id)
                )
            if found is None or found.owner_id != principal.user_id:
                self.error = self._t("err_assistant_not_found")
                return
        default = get_runtime().settings.default_model
        self.form = _form_of(found, default if default in self.models else (self.models or [""])[0])
        self.editing, self.error, self.notice = assistant_id, "", ""

    @rx.event
    def close_editor(self) -> None:
        """Close the editor without saving."""
        self.editing, self.form, self.error = "", {}, ""

    @rx.event
    async def save(self, form: dict[str, Any]) -> None:
        """Create or change the assistant in the editor (a refused form stays open with what was typed)."""
        principal = await self._require()
        self.form = {k: str(v) for k, v in form.items() if k in FIELDS}
        try:
            spec = io.spec_of(_fields(form))
            async with session_scope() as session:
                if self.editing == "new":
                    await assistants.create_assistant(session=session, user_id=principal.user_id, spec=spec)
                else:
                    await assistants.update_assistant(
                        session=session, user_id=principal.user_id, assistant_id=int(self.editing), spec=spec
                    )
        except InputError as exc:
            self.error = self._err(exc)
            return
        self.editing, self.form, self.error, self.notice = "", {}, "", self._t("saved")
        await self._reload(principal.user_id)

    @rx.event
    async def delete(self, assistant_id: str) -> None:
        """Delete one of the user's own assistants."""
        principal = await self._require()
        try:
            async with session_scope() as session:
                await assistants.delete_assistant(
                    session=session, user_id=principal.user_id, assistant_id=int(assistant_id)
                )
        except InputError as exc:
            self.error = self._err(exc)
        await self._reload(principal.user_id)

    @rx.event
    async def set_shared(self, assistant_id: str, shared: bool) -> None:
        """Share one's own assistant with everyone, or stop (admins; the service checks the role)."""
        principal = await self._require()
        try:
            async with session_scope() as session:
                await assistants.set_shared(
                    session=session, user_id=principal.user_id, assistant_id=int(assistant_id), shared=bool(shared)
                )
        except InputError as exc:
            self.error = self._err(exc)
        await self._reload(principal.user_id)

    @rx.event
    async def export(self, assistant_id: str):
        """Download one assistant ("all": the user's own) as the versioned JSON file."""
        principal = await self._require()
        async with session_scope(read_only=True) as session:
            rows = await assistants.list_assistants(session=session, user_id=principal.user_id)
        chosen = [a for a in rows if (a.owner_id == principal.user_id if assistant_id == "all"
                                      else str(a.id) == assistant_id)]  # fmt: skip
        if not chosen:
            self.error = self._t("err_assistant_not_found")
            return None
        name = "rubin-assistants.json" if assistant_id == "all" else f"rubin-assistant-{chosen[0].slug}.json"
        return rx.download(data=io.dumps([assistants.spec_from(a) for a in chosen]), filename=name)

    @rx.event
    async def import_file(self, form: dict[str, Any]) -> None:
        """Import the pasted contents of an exported file (all of its assistants, or none with the reason)."""
        principal = await self._require()
        raw = str(form.get("file", ""))
        self.import_text = raw[: io.MAX_FILE_BYTES]
        try:
            specs = io.parse_document(raw)
            async with session_scope() as session:
                made = await assistants.import_assistants(session=session, user_id=principal.user_id, specs=specs)
        except InputError as exc:
            self.error = self._err(exc)
            return
        self.import_text, self.error = "", ""
        self.notice = self._t("assistants_imported", count=len(made))
        await self._reload(principal.user_id)
