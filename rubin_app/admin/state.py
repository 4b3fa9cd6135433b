"""State of the admin page: users and roles, sign-in policy, the audit log. Every handler re-checks the role."""

from __future__ import annotations

import dataclasses

import reflex as rx

from rubin_app import i18n
from rubin_app.accounts import reauth
from rubin_app.admin.lookalikes import lookalikes
from rubin_app.services import accounts, audit
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState

AUDIT_PAGE = 50  # audit events per page
ALL_ACTIONS = "all"  # the action filter's "every action" (a select item cannot have an empty value)


@dataclasses.dataclass
class UserRow:
    """A user as the admin table shows it."""

    id: int = 0
    email: str = ""
    name: str = ""
    provider: str = ""
    role: str = ""
    created: str = ""
    last_login: str = ""
    lookalike: str = ""  # the email of another account this one imitates (homoglyphs), or ""


@dataclasses.dataclass
class AuditRow:
    """An audit event as the admin table shows it."""

    id: int = 0
    when: str = ""
    action: str = ""
    ok: bool = True
    user: str = ""
    ip: str = ""
    detail: str = ""


class AdminState(AuthState):
    """Users, policy switches and the audit log."""

    users: list[UserRow] = []
    events: list[AuditRow] = []
    local_login: bool = True
    local_signup: bool = True
    require_approval: bool = False
    error: str = ""
    delete_id: int = 0
    delete_email: str = ""
    audit_action: str = ALL_ACTIONS
    audit_text: str = ""
    audit_failures: bool = False
    audit_page: int = 0
    audit_has_more: bool = False
    audit_actions: list[str] = []
    reauth_open: bool = False  # the "confirm it's you" dialog (a dangerous action needs a fresh re-authentication)
    reauth_provider: str = ""  # "": a password; else the provider id to sign in again with
    reauth_error: str = ""
    _retry: dict = {}  # the refused action, done again once re-authenticated

    @rx.event
    async def on_load(self):
        """Admins only: load users, policy and the audit log."""
        principal, events = await self._enter(admin=True)
        if principal is None:
            return events
        self.error = ""
        await self._reload(principal.user_id)
        return events

    async def _reload(self, actor_id: int) -> None:
        rt = get_runtime()
        lang = self.lang or i18n.DEFAULT_LANGUAGE
        async with session_scope() as session:
            users = await accounts.list_users(session=session, actor_id=actor_id)
            policy = await accounts.get_policy(session=session, settings=rt.settings)
            rows = await audit.list_events(
                session=session, limit=AUDIT_PAGE + 1, offset=self.audit_page * AUDIT_PAGE,
                action="" if self.audit_action == ALL_ACTIONS else self.audit_action, text=self.audit_text,
                failures_only=self.audit_failures,
            )  # fmt: skip
            self.audit_actions = await audit.list_actions(session=session)
        self.audit_has_more, rows = len(rows) > AUDIT_PAGE, rows[:AUDIT_PAGE]
        imitating = lookalikes((u.id or 0, u.email or "", u.display_name) for u in users)
        self.users = [
            UserRow(
                id=u.id or 0,
                email=u.email or "",
                name=u.display_name,
                provider=u.provider,
                role=str(u.role),
                created=i18n.when(u.created_at, lang),
                last_login=i18n.when(u.last_login_at, lang),
                lookalike=imitating.get(u.id or 0, ""),
            )
            for u in users
        ]
        self.local_login, self.local_signup = policy.local_login, policy.local_signup
        self.require_approval = policy.require_approval
        self.events = [
            AuditRow(
                id=e.id or 0,
                when=i18n.stamp(e.created_at, lang),
                action=e.action,
                ok=e.ok,
                user=e.email or (str(e.user_id) if e.user_id else ""),
                ip=e.ip,
                detail=e.detail,
            )
            for e in rows
        ]

    async def _audit_view(self, **changes) -> None:
        """Apply filter or page changes to the audit view and reload it (admins only)."""
        principal = await self._require(admin=True)
        for name, value in changes.items():
            setattr(self, name, value)
        await self._reload(principal.user_id)

    @rx.event
    async def filter_audit(self, form: dict):
        """Apply the audit filters (action, email or IP text, only failures) from the first page."""
        await self._audit_view(
            audit_text=str(form.get("text", "")).strip()[:254], audit_failures=bool(form.get("failures")), audit_page=0
        )

    @rx.event
    async def set_audit_action(self, action: str):
        """Show one action (or all) from the first page."""
        await self._audit_view(audit_action=str(action)[:64] or ALL_ACTIONS, audit_page=0)

    @rx.event
    async def clear_audit_filters(self):
        """Every event again, newest first."""
        await self._audit_view(audit_action=ALL_ACTIONS, audit_text="", audit_failures=False, audit_page=0)

    @rx.event
    async def audit_older(self):
        """The next page of older events."""
        if self.audit_has_more:
            await self._audit_view(audit_page=self.audit_page + 1)

    @rx.event
    async def audit_newer(self):
        """The previous page of newer events."""
        await self._audit_view(audit_page=max(0, self.audit_page - 1))

    async def _act(self, action, retry: dict | None = None) -> None:
        principal = await self._require(admin=True)
        try:
            async with session_scope() as session:
                await action(session, principal.user_id, principal.session_id)
        except InputError as exc:
            if exc.code == "reauth_required" and retry is not None:
                self._retry, self.reauth_error, self.reauth_open = retry, "", True
                self.reauth_provider = "" if principal.provider == "local" else principal.provider
            else:
                self.error = self._t(f"err_{exc.code}", **exc.params)
        else:
            self.error = ""
        await self._reload(principal.user_id)

    @rx.event
    async def set_role(self, user_id: int, role: str):
        """Approve, promote or demote a user (all but approving need a recent re-authentication)."""

        async def action(session, actor_id: int, session_id: int) -> None:
            await accounts.set_role(
                session=session, actor_id=actor_id, user_id=int(user_id), role=role, ip=self._client_ip(),
                actor_session_id=session_id,
            )  # fmt: skip

        await self._act(action, {"kind": "role", "user_id": int(user_id), "role": role})
        get_runtime().principals.forget_user(int(user_id))
        await get_runtime().permissions.changed()  # an admin has every permission

    @rx.event
    async def confirm_reauth(self, form: dict):
        """Check the admin's password again, then do the refused action."""
        principal = await self._require(admin=True)
        try:
            async with session_scope() as session:
                await reauth.confirm_password(
                    session=session, settings=get_runtime().settings, user_id=principal.user_id,
                    session_id=principal.session_id, password=str(form.get("password", "")), ip=self._client_ip(),
                )  # fmt: skip
        except InputError as exc:
            self.reauth_error = self._t(f"err_{exc.code}", **exc.params)
            return
        retry, self._retry, self.reauth_open = self._retry, {}, False
        if retry.get("kind") == "role":
            await self.set_role(retry["user_id"], retry["role"])
        elif retry.get("kind") == "delete":
            self.delete_id = retry["user_id"]
            await self.confirm_delete()

    @rx.event
    def reauth_open_changed(self, is_open: bool) -> None:
        """Escape or Cancel closes the dialog (the action is not done)."""
        if not is_open:
            self.reauth_open, self._retry, self.reauth_error = False, {}, ""

    @rx.event
    async def set_policy(self, key: str, value: bool):
        """Switch local sign-in, sign-up or approval on or off."""

        async def action(session, actor_id: int, _session_id: int) -> None:
            await accounts.set_policy(
                session=session,
                settings=get_runtime().settings,
                actor_id=actor_id,
                key=key,
                value=bool(value),
                ip=self._client_ip(),
            )

        await self._act(action)

    @rx.event
    def ask_delete(self, user_id: int, email: str) -> None:
        """Open the confirmation for deleting a user."""
        self.delete_id, self.delete_email = int(user_id), email

    @rx.event
    def delete_open_changed(self, is_open: bool) -> None:
        """Escape or a click outside closes the confirmation."""
        if not is_open:
            self.delete_id, self.delete_email = 0, ""

    @rx.event
    def cancel_delete(self) -> None:
        """Close the confirmation."""
        self.delete_id, self.delete_email = 0, ""

    @rx.event
    async def confirm_delete(self):
        """Delete the user and all their data."""
        target = self.delete_id
        self.delete_id, self.delete_email = 0, ""
        if not target:
            return

        async def action(session, actor_id: int, session_id: int) -> None:
            await accounts.delete_account(
                session=session, user_id=target, actor_id=actor_id, ip=self._client_ip(), actor_session_id=session_id
            )

        await self._act(action, {"kind": "delete", "user_id": target})
        get_runtime().principals.forget_user(target)
