"""The account page (`/account`): name, language, theme, password, sessions, export, API keys and usage, deletion."""

from __future__ import annotations

import reflex as rx

from rubin_app import i18n
from rubin_app.components import styles
from rubin_app.components.auth_forms import field, notice, page_card, post_form, touch_button
from rubin_app.components.personal import memory_section, personalisation_section
from rubin_app.components.privacy import privacy_section
from rubin_app.components.two_factor import two_factor_section
from rubin_app.components.webhooks import webhooks_section
from rubin_app.pages.api_keys import api_keys_section
from rubin_app.services import accounts, sessions
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState

T = AuthState.tr


class AccountState(AuthState):
    """The signed-in user's own settings; every handler re-checks the session."""

    name_edit: str = ""
    language_choice: str = "browser"
    theme_choice: str = "system"
    session_count: int = 0
    is_local: bool = False
    profile_notice: str = ""
    profile_error: str = ""
    password_notice: str = ""
    password_error: str = ""
    delete_open: bool = False
    delete_error: str = ""
    security_notice: str = ""  # someone tried to sign up with this account's email

    def _error(self, exc: InputError) -> str:
        return self._t(f"err_{exc.code}", **exc.params)

    @rx.event
    async def on_load(self):
        """Check the session, then load the profile."""
        principal, events = await self._enter()
        if principal is None:
            return events
        async with session_scope() as session:
            user = await accounts.get_user(session=session, user_id=principal.user_id)
            self.session_count = await sessions.count_active(session=session, user_id=principal.user_id)
            tries, last_try = await accounts.sign_up_attempts_notice(session=session, user_id=principal.user_id)
        if user is None:
            return rx.redirect("/login", replace=True)
        self.name_edit = user.display_name
        self.language_choice = user.language or "browser"
        self.theme_choice = user.theme or "system"
        self.is_local = user.provider == "local"
        self.profile_notice = self.profile_error = self.password_notice = self.password_error = ""
        self.delete_open, self.delete_error = False, ""
        lang = self.lang or i18n.DEFAULT_LANGUAGE
        self.security_notice = (
            self._t("signup_attempt_notice", count=tries, when=i18n.when(last_try, lang)) if tries else ""
        )
        return events

    async def _update(self, **fields: str) -> bool:
        principal = await self._require()
        try:
            async with session_scope() as session:
                user = await accounts.update_profile(session=session, user_id=principal.user_id, **fields)
        except InputError as exc:
            self.profile_error, self.profile_notice = self._error(exc), ""
            return False
        get_runtime().principals.forget_user(principal.user_id)
        self.user_name = user.display_name
        self.profile_error, self.profile_notice = "", self._t("saved")
        return True

    @rx.event
    async def save_name(self, form: dict):
        """Save the display name."""
        await self._update(display_name=str(form.get("name", ""))[:1000])

    @rx.event
    async def save_language(self, value: str):
        """Save the interface language ("browser": follow the browser)."""
        lang = "" if value == "browser" else value
        if await self._update(language=lang):
            self.language_choice = value
            if lang:
                self.lang = lang
                self._show_language()

    @rx.event
    async def save_theme(self, value: str):
        """Save the theme (the page applies it at once through the colour-mode context)."""
        if await self._update(theme="" if value == "system" else value):
            self.theme_choice = value

    @rx.event
    async def change_password(self, form: dict):
        """Change the password; other devices are signed out."""
        principal = await self._require()
        if form.get("new", "") != form.get("new2", ""):
            self.password_error, self.password_notice = self._t("err_password_mismatch"), ""
            return None
        try:
            async with session_scope() as session:
                ended = await accounts.change_password(
                    session=session,
                    settings=get_runtime().settings,
                    user_id=principal.user_id,
                    current=str(form.get("current", "")),
                    new=str(form.get("new", "")),
                    keep_session_id=principal.session_id,
                    ip=self._client_ip(),
                )
        except InputError as exc:
            self.password_error, self.password_notice = self._error(exc), ""
            return None
        get_runtime().principals.forget_user(principal.user_id)
        self.session_count = 1
        self.password_error, self.password_notice = "", self._t("password_changed", count=ended)
        return rx.set_value("current-password", "")

    @rx.event
    def set_delete_open(self, value: bool) -> None:
        """Open or close the deletion dialog."""
        self.delete_open, self.delete_error = value, ""

    @rx.event
    async def delete_account(self, form: dict):
        """Delete the account and everything in it, after the email is typed to confirm."""
        principal = await self._require()
        if str(form.get("confirm", "")).strip().lower() != principal.email.lower():
            self.delete_error = self._t("err_confirm_email")
            return None
        rt = get_runtime()
        try:
            async with session_scope() as session:
                await accounts.delete_account(
                    session=session, user_id=principal.user_id, actor_id=principal.user_id, ip=self._client_ip()
                )
        except InputError as exc:
            self.delete_error = self._error(exc)
            return None
        rt.principals.forget_user(principal.user_id)
        self.delete_open = False
        return rx.call_script("window.location.assign('/auth/signed-out?info=deleted')")


def _section(title: rx.Var, *children: rx.Component) -> rx.Component:
    return rx.vstack(rx.heading(title, size="4"), *children, spacing="3", width="100%", padding_top="0.5rem")


def _profile() -> rx.Component:
    return _section(
        T["profile"],
        rx.form(
            rx.hstack(
                rx.box(
                    field(T["display_name"], name="name", default_value=AccountState.name_edit, max_length=100),
                    flex="1",
                ),
                rx.button(T["save"], type="submit", size="3", min_height=styles.TOUCH, data_testid="save-name"),
                align="end",
                width="100%",
            ),
            on_submit=AccountState.save_name,
            width="100%",
        ),
        rx.hstack(
            rx.text(T["language"], size="2", weight="medium", flex="1"),
            rx.select.root(
                rx.select.trigger(aria_label=T["language"], data_testid="account-language"),
                rx.select.content(
                    rx.select.item(T["lang_browser"], value="browser"),
                    rx.select.item("English", value="en"),
                    rx.select.item("Русский", value="ru"),
                ),
                value=AccountState.language_choice,
                on_change=AccountState.save_language,
            ),
            width="100%",
            align="center",
        ),
        rx.hstack(
            rx.text(T["theme_label"], size="2", weight="medium", flex="1"),
            rx.select.root(
                rx.select.trigger(aria_label=T["theme_label"], data_testid="account-theme"),
                rx.select.content(
                    rx.select.item(T["theme_system"], value="system"),
                    rx.select.item(T["theme_light"], value="light"),
                    rx.select.item(T["theme_dark"], value="dark"),
                ),
                value=AccountState.theme_choice,
                on_change=lambda v: [rx.style.set_color_mode(v), AccountState.save_theme(v)],
            ),
            width="100%",
            align="center",
        ),
        notice(AccountState.profile_notice, "green", "profile-notice"),
        notice(AccountState.profile_error, "red", "profile-error"),
    )


def _password() -> rx.Component:
    return rx.cond(
        AccountState.is_local,
        _section(
            T["change_password"],
            rx.form(
                rx.vstack(
                    field(
                        T["current_password"],
                        name="current",
                        type="password",
                        id="current-password",
                        auto_complete="current-password",
                        required=True,
                    ),
                    field(T["new_password"], name="new", type="password", auto_complete="new-password", required=True),
                    field(
                        T["password_again"], name="new2", type="password", auto_complete="new-password", required=True
                    ),
                    touch_button(T["change_password"], type="submit", variant="soft", data_testid="change-password"),
                    width="100%",
                ),
                on_submit=AccountState.change_password,
                reset_on_submit=True,
                width="100%",
            ),
            notice(AccountState.password_notice, "green", "password-notice"),
            notice(AccountState.password_error, "red", "password-error"),
        ),
    )


def _sessions_and_data() -> rx.Component:
    return _section(
        T["sign_out"],
        rx.text(
            T["active_sessions"].replace("{count}", AccountState.session_count.to_string()),
            size="2",
            color=styles.muted,
            data_testid="session-count",
        ),
        post_form(
            touch_button(T["sign_out"], type="submit", variant="soft", data_testid="sign-out"),
            action="/auth/logout",
            testid="sign-out-form",
        ),
        post_form(
            touch_button(T["sign_out_all"], type="submit", variant="outline", data_testid="sign-out-all"),
            action="/auth/logout-all",
            testid="sign-out-all-form",
        ),
        rx.heading(T["export"], size="4", padding_top="0.5rem"),
        rx.text(T["export_body"], size="2", color=styles.muted),
        # A real download from the server: React Router's Link (rx.el.a) would route it inside the app.
        touch_button(
            rx.el.a(T["export"], href="/api/account/export", download=True, reload_document=True, data_testid="export"),
            variant="soft",
            as_child=True,
        ),
    )


def _delete() -> rx.Component:
    return _section(
        T["danger_zone"],
        touch_button(
            T["delete_account"],
            color_scheme="red",
            variant="soft",
            on_click=AccountState.set_delete_open(True),
            data_testid="delete-account",
        ),
        rx.alert_dialog.root(
            rx.alert_dialog.content(
                rx.alert_dialog.title(T["delete_account"]),
                rx.alert_dialog.description(T["delete_account_body"]),
                rx.form(
                    rx.vstack(
                        field(
                            T["email"], name="confirm", type="email", auto_complete="off", data_testid="confirm-email"
                        ),
                        notice(AccountState.delete_error, "red", "delete-error"),
                        rx.hstack(
                            rx.alert_dialog.cancel(rx.button(T["cancel"], variant="soft", color_scheme="gray")),
                            rx.button(
                                T["delete_account_confirm"],
                                type="submit",
                                color_scheme="red",
                                data_testid="confirm-delete-account",
                            ),
                            justify="end",
                            width="100%",
                        ),
                        width="100%",
                        padding_top="0.75rem",
                    ),
                    on_submit=AccountState.delete_account,
                ),
            ),
            open=AccountState.delete_open,
            on_open_change=AccountState.set_delete_open,
        ),
    )


def account_page() -> rx.Component:
    """The account page."""
    return page_card(
        rx.hstack(
            rx.heading(T["account_title"], size="6"),
            rx.spacer(),
            rx.link(T["back_to_chat"], href="/", size="2", data_testid="back-to-chat"),
            width="100%",
            align="center",
        ),
        rx.text(
            T["signed_in_as"].replace("{email}", AuthState.user_email).replace("{provider}", AuthState.user_provider),
            size="2",
            color=styles.muted,
            data_testid="signed-in-as",
        ),
        rx.cond(AuthState.is_admin, rx.link(T["admin"], href="/admin", size="2", data_testid="to-admin")),
        notice(AccountState.security_notice, "amber", "security-notice"),
        _profile(),
        personalisation_section(),  # custom instructions
        memory_section(),  # long-term memory: the list and the switch
        _password(),
        two_factor_section(),
        _sessions_and_data(),
        privacy_section(),  # sessions (end one or all others), chat retention
        api_keys_section(),
        webhooks_section(),
        _delete(),
        width="36rem",
        testid="account-page",
    )
