"""The account page's privacy sections: the user's active sessions (end one, or all others) and how long
their chats are kept (the instance's default, or a shorter choice of their own)."""

from __future__ import annotations

import reflex as rx

from rubin_app import i18n
from rubin_app.services import audit, devices, retention, sessions
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState

INSTANCE = "instance"  # the retention select's "instance default" (a select item cannot have an empty value)


class PrivacyState(AuthState):
    """The signed-in user's sessions and retention choice; every handler re-checks the session."""

    devices: list[dict[str, str]] = []
    sessions_notice: str = ""
    sessions_error: str = ""
    retention_choice: str = INSTANCE
    retention_choices: list[dict[str, str]] = []  # the periods the user may pick (shorter than the instance's)
    retention_text: str = ""  # "Your chats are kept for 30 days after their last message." …
    retention_error: str = ""

    @rx.event
    async def load_privacy(self) -> None:
        """Read the sessions and the retention in force."""
        self.sessions_notice = self.sessions_error = self.retention_error = ""
        await self._load_sessions()
        await self._load_retention()

    async def _load_sessions(self) -> None:
        principal = await self._require()
        lang = self.lang or i18n.DEFAULT_LANGUAGE
        async with session_scope(read_only=True) as session:
            rows = await sessions.list_active(session=session, user_id=principal.user_id)
        self.devices = [
            {
                "id": str(s.id), "device": devices.describe(s.user_agent) or self._t("device_unknown"),
                "ip": s.ip, "created": i18n.stamp(s.created_at, lang),
                "seen": i18n.when(s.last_seen_at or s.created_at, lang),
                "current": "1" if s.id == principal.session_id else "",
            }
            for s in rows
        ]  # fmt: skip

    async def _load_retention(self) -> None:
        principal = await self._require()
        async with session_scope(read_only=True) as session:
            choice, instance, days = await retention.user_days(
                session=session, settings=get_runtime().settings, user_id=principal.user_id
            )
        lang = self.lang or i18n.DEFAULT_LANGUAGE
        self.retention_choice = str(choice) if choice is not None else INSTANCE
        offered = [d for d in retention.USER_CHOICES if instance == 0 or d < instance]
        if choice is not None and choice not in offered:
            offered.append(choice)
        self.retention_choices = [{"value": str(d), "label": i18n.days(d, lang)} for d in offered]
        rule = i18n.days(instance, lang) if instance else self._t("retention_forever")
        mine = self._t("retention_in_force", days=i18n.days(days, lang)) if days else self._t("retention_kept_forever")
        self.retention_text = f"{mine} {self._t('retention_instance', policy=rule)}"

    @rx.event
    async def end_session(self, session_id: str) -> None:
        """End one of the user's sessions: that browser is signed out at once (this one: on the next event)."""
        principal = await self._require()
        self.sessions_notice = self.sessions_error = ""
        target = int(session_id) if str(session_id).isdigit() else 0
        async with session_scope() as session:
            ended = await sessions.revoke_by_id(session=session, user_id=principal.user_id, session_id=target)
            if ended:
                await audit.record(
                    session=session, action=audit.SESSION_ENDED, user_id=principal.user_id,
                    actor_id=principal.user_id, ip=self._client_ip(), detail=f"session {target}",
                )  # fmt: skip
        get_runtime().principals.forget_user(principal.user_id)
        if ended:
            self.sessions_notice = self._t("session_ended")
        else:
            self.sessions_error = self._t("err_session_not_found")
        await self._load_sessions()

    @rx.event
    async def end_other_sessions(self) -> None:
        """End every session of the user but this one."""
        principal = await self._require()
        async with session_scope() as session:
            count = await sessions.revoke_all(
                session=session, user_id=principal.user_id, keep_session_id=principal.session_id
            )
            await audit.record(
                session=session, action=audit.SIGN_OUT_ALL, user_id=principal.user_id, ip=self._client_ip(),
                detail=f"ended {count}, kept this one",
            )  # fmt: skip
        get_runtime().principals.forget_user(principal.user_id)
        self.sessions_error, self.sessions_notice = "", self._t("sessions_ended", count=count)
        await self._load_sessions()

    @rx.event
    async def set_retention(self, value: str) -> None:
        """Keep the user's chats for fewer days than the instance does, or follow the instance again."""
        principal = await self._require()
        value = str(value)
        days = None if value == INSTANCE else int(value) if value.isdigit() else -1  # -1: refused with a message
        self.retention_error = ""
        try:
            async with session_scope() as session:
                await retention.set_user_days(
                    session=session, settings=get_runtime().settings, user_id=principal.user_id, days=days
                )
        except InputError as exc:
            self.retention_error = self._t(f"err_{exc.code}", **exc.params)
        await self._load_retention()
