"""The login page (`/login`): provider buttons, email + password sign-in and sign-up, and the pending page."""

from __future__ import annotations

import dataclasses
from urllib.parse import quote

import reflex as rx

from rubin_app import i18n
from rubin_app.components import styles
from rubin_app.components.auth_forms import field, notice, page_card, post_form, touch_button
from rubin_app.components.prefs import language_select
from rubin_app.services import accounts
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState

T = AuthState.tr
QUERY_PARAMS = ("minutes", "seconds", "limit", "provider")


@dataclasses.dataclass
class ProviderView:
    """A provider button."""

    id: str = ""
    name: str = ""
    href: str = ""


class LoginState(AuthState):
    """What the login page shows: the policy in force, providers, and the error it was sent back with."""

    mode: str = "signin"  # "signin", "signup" or "code" (the second step after a correct password)
    email: str = ""
    name: str = ""
    next_path: str = ""
    error_code: str = ""
    error_params: dict[str, str] = {}
    info_code: str = ""
    providers: list[ProviderView] = []
    local_login: bool = True
    local_signup: bool = True
    min_length: int = 10

    @rx.var
    def error_text(self) -> str:
        """The error in the chosen language (re-rendered when the language changes)."""
        if not self.error_code:
            return ""
        key = f"err_{self.error_code}"
        return i18n.t(key if key in i18n.EN else "err_login_failed", self.lang or "en", **self.error_params)

    @rx.var
    def info_text(self) -> str:
        """A neutral notice (signed out, session ended, account deleted)."""
        key = f"info_{self.info_code}"
        return i18n.t(key, self.lang or "en") if key in i18n.EN else ""

    @rx.event
    async def on_load(self):
        """Signed in already: go on. Otherwise show the forms the policy allows."""
        principal = await self._principal()
        params = self.router.url.query_parameters
        target = str(params.get("next", "") or "")
        self.next_path = target if target.startswith("/") and not target.startswith("//") else ""
        if principal is not None:
            return rx.redirect(self.next_path or "/", replace=True)
        rt = get_runtime()
        async with session_scope() as session:
            policy = await accounts.get_policy(session=session, settings=rt.settings)
        self.local_login = policy.local_login
        self.local_signup = policy.local_login and policy.local_signup
        self.min_length = rt.settings.password_min_length
        suffix = f"?next={quote(self.next_path, safe='/')}" if self.next_path else ""
        self.providers = [
            ProviderView(id=p["id"], name=p["name"], href=f"/auth/login/{p['id']}{suffix}")
            for p in rt.providers.public_list()
        ]
        self.mode = "signup" if params.get("mode") == "signup" and self.local_signup else "signin"
        if params.get("step") == "code" and self.local_login:
            self.mode = "code"
        self.error_code = str(params.get("error", "") or "")[:40]
        self.error_params = {k: str(params[k])[:20] for k in QUERY_PARAMS if params.get(k)}
        self.info_code = str(params.get("info", "") or "")[:40]
        self.email = str(params.get("email", "") or "")[:254]
        self.name = str(params.get("name", "") or "")[:100]
        return self._init_language()

    @rx.event
    def show(self, mode: str) -> None:
        """Switch between signing in and creating an account."""
        self.mode = "signup" if mode == "signup" and self.local_signup else "signin"
        self.error_code = ""


def _providers() -> rx.Component:
    return rx.vstack(
        rx.foreach(
            LoginState.providers,
            lambda p: touch_button(
                # rx.el.a is React Router's Link: without reload_document the click stays in the single-page
                # app (its "404" page) instead of reaching the server's /auth/login/<provider> redirect.
                rx.el.a(
                    T["sign_in_with"].replace("{name}", p.name),
                    href=p.href,
                    reload_document=True,
                    data_testid="provider-" + p.id,
                ),
                variant="outline",
                as_child=True,
            ),
        ),
        width="100%",
        spacing="2",
    )


def _email_field() -> rx.Component:
    return field(
        T["email"],
        name="email",
        type="email",
        default_value=LoginState.email,
        required=True,
        auto_complete="username",
        max_length=254,
    )


def _switch_button(label: rx.Var, mode: str, testid: str) -> rx.Component:
    """ "No account? Create one" / "Have an account? Sign in": switches the form in place."""
    return rx.button(
        label, on_click=LoginState.show(mode), type="button", variant="ghost", size="2", data_testid=testid
    )


def _signin_form() -> rx.Component:
    return post_form(
        _email_field(),
        field(T["password"], name="password", type="password", required=True, auto_complete="current-password"),
        rx.el.input(type="hidden", name="next", value=LoginState.next_path),
        touch_button(T["sign_in"], type="submit", data_testid="sign-in"),
        rx.cond(
            LoginState.local_signup,
            _switch_button(T["no_account"], "signup", "to-signup"),
        ),
        action="/auth/local/login",
        testid="signin-form",
    )


def _signup_form() -> rx.Component:
    return post_form(
        field(T["display_name"], name="name", default_value=LoginState.name, max_length=100, auto_complete="name"),
        _email_field(),
        field(T["password"], name="password", type="password", required=True, auto_complete="new-password"),
        rx.text(T["password_hint"].replace("{limit}", LoginState.min_length.to_string()), size="1", color=styles.muted),
        field(T["password_again"], name="password2", type="password", required=True, auto_complete="new-password"),
        touch_button(T["sign_up"], type="submit", data_testid="sign-up"),
        _switch_button(T["have_account"], "signin", "to-signin"),
        action="/auth/local/signup",
        testid="signup-form",
    )


# Passkey at the second step: options from the server (the pending step keeps the challenge), the browser's
# answer posted as JSON in a hidden form; any failure comes back as a message on this page.
PASSKEY_SCRIPT = """(async () => {
  const form = document.getElementById('passkey-form');
  const fail = (code) => window.location.assign('/login?step=code&error=' + encodeURIComponent(code));
  try {
    const reply = await fetch('/auth/local/passkey/options', {method: 'POST', credentials: 'same-origin'});
    const body = await reply.json();
    if (!reply.ok) return fail(body.error || 'passkey_failed');
    const answer = await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(body)});
    form.elements.credential.value = JSON.stringify(answer.toJSON());
    form.submit();
  } catch (e) { fail('passkey_failed'); }
})()"""


def _passkey_form() -> rx.Component:
    return post_form(
        rx.el.input(type="hidden", name="credential", value=""),
        rx.el.input(type="hidden", name="next", value=LoginState.next_path),
        touch_button(
            T["login_use_passkey"],
            type="button",
            variant="soft",
            on_click=rx.call_script(PASSKEY_SCRIPT),
            data_testid="use-passkey",
        ),
        action="/auth/local/passkey",
        testid="passkey-form",
        id="passkey-form",
    )


def _code_form() -> rx.Component:
    """The second step: a code from the authenticator app or a recovery code (the pending step is a cookie)."""
    return post_form(
        rx.text(T["login_code_hint"], size="2", color=styles.muted),
        field(
            T["login_code_field"],
            name="code",
            required=True,
            auto_complete="one-time-code",
            auto_focus=True,
            max_length=40,
            data_testid="login-code",
        ),
        rx.el.input(type="hidden", name="next", value=LoginState.next_path),
        touch_button(T["verify"], type="submit", data_testid="verify-code"),
        _switch_button(T["cancel"], "signin", "code-cancel"),
        action="/auth/local/code",
        testid="code-form",
    )


def login_page() -> rx.Component:
    """Sign in or create an account."""
    return page_card(
        rx.hstack(
            rx.heading(
                rx.match(
                    LoginState.mode, ("signup", T["signup_title"]), ("code", T["login_code_title"]), T["login_title"]
                ),
                size="6",
            ),
            rx.spacer(),
            language_select(size="1"),
            width="100%",
            align="center",
        ),
        notice(LoginState.error_text, "red", "login-error"),
        notice(LoginState.info_text, "blue", "login-info"),
        rx.cond(
            LoginState.mode == "code",
            rx.fragment(_code_form(), _passkey_form()),
            rx.fragment(
                _providers(),
                rx.cond(
                    LoginState.local_login,
                    rx.fragment(
                        rx.cond(LoginState.providers.length() > 0, rx.text(T["or"], color=styles.muted, size="2")),
                        rx.cond(LoginState.mode == "signup", _signup_form(), _signin_form()),
                    ),
                    rx.cond(LoginState.providers.length() == 0, rx.text(T["no_login_method"], color=styles.muted)),
                ),
            ),
        ),
        testid="login-page",
    )


class PendingState(AuthState):
    """A signed-in user waiting for approval."""

    @rx.event
    async def on_load(self):
        """Approved meanwhile: go to the chat; signed out: go to the login page."""
        principal, events = await self._enter(allow_pending=True)
        if principal is not None and principal.is_active:
            return rx.redirect("/", replace=True)
        return events


def pending_page() -> rx.Component:
    """ "Your account waits for an admin"."""
    return page_card(
        rx.heading(T["pending_title"], size="6"),
        rx.text(T["pending_body"].replace("{email}", AuthState.user_email), data_testid="pending-body"),
        touch_button(T["check_again"], on_click=PendingState.on_load, variant="soft"),
        post_form(
            touch_button(T["sign_out"], type="submit", variant="outline"), action="/auth/logout", testid="sign-out"
        ),
        testid="pending-page",
    )
