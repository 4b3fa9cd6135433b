"""The signed-in user, as every page's state sees it, and the interface language.

The identity is never a client-settable var: each event reads the session cookie the browser sent
when its websocket connected (HttpOnly, set by the /auth routes) and resolves it server-side through
`Runtime.principal` (a live, unrevoked, unexpired session). Handlers that touch user data call
`_require()`; a dead session raises `SignedOut`, which the app's exception handler turns into a
redirect to the login page.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import reflex as rx
from reflex.app import default_backend_exception_handler
from reflex.event import EventSpec

from rubin_app import i18n
from rubin_app.accounts import twofactor
from rubin_app.services import accounts
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.services.sessions import Principal
from rubin_app.state.socket import SESSION_HEADER

NOT_DUE_TTL = 10.0  # seconds an event trusts that the two-factor policy does not hold the user back
_not_due: dict[int, float] = {}  # user id -> when the policy was last found not to apply (this worker)


class SignedOut(Exception):
    """The event's session is gone (signed out, expired, revoked) or not allowed here."""

    def __init__(self, target: str = "/login?info=session_ended") -> None:
        super().__init__(target)
        self.target = target


def _detect_language_script() -> str:
    return (
        "((navigator.languages && navigator.languages.length) ? navigator.languages : [navigator.language]).join(',')"
    )


class AuthState(rx.State):
    """Language, and who is signed in (display values only: authority stays server-side)."""

    lang: str = rx.LocalStorage("", name="rubin_lang", sync=True)
    send_key: str = rx.LocalStorage("enter", name="rubin_send_key", sync=True)  # "enter" or "ctrl" (rubin.js)
    user_name: str = ""
    user_email: str = ""
    user_role: str = ""
    user_provider: str = ""
    _shown_user: int = 0
    # The language `tr` is in. Every page load sets `lang` again (the hydration resets the browser's storage), so
    # `tr` (27 kB) follows this one instead, changed only when the language does: not sent again at each load.
    _tr_lang: str = i18n.DEFAULT_LANGUAGE

    # ---- language ----------------------------------------------------------------------------
    @rx.var
    def tr(self) -> dict[str, str]:
        """The interface strings in the chosen language."""
        return i18n.CATALOGS.get(self._tr_lang, i18n.EN)

    def _show_language(self) -> None:
        """Let `tr` follow `lang` (when it changed)."""
        lang = self.lang if self.lang in i18n.CATALOGS else i18n.DEFAULT_LANGUAGE
        if self._tr_lang != lang:
            self._tr_lang = lang

    @rx.var
    def is_admin(self) -> bool:
        """Whether to show admin links (the admin page checks again server-side)."""
        return self.user_role == "admin"

    def _t(self, key: str, **params: object) -> str:
        return i18n.t(key, self.lang or i18n.DEFAULT_LANGUAGE, **params)

    @rx.event
    async def set_language(self, lang: str) -> None:
        """Switch the interface language (and keep it for the account, when signed in)."""
        if lang in i18n.CATALOGS:
            self.lang = lang
            self._show_language()
            await self._save_profile(language=lang)

    @rx.event
    async def save_theme(self, theme: str) -> None:
        """Keep the theme the tab just applied for the account ("system": follow the device)."""
        if theme in ("system", "light", "dark"):
            await self._save_profile(theme="" if theme == "system" else theme)

    @rx.event
    def set_send_with_ctrl(self, on: bool) -> None:
        """Ctrl+Enter sends (Enter adds a line) instead of Enter."""
        self.send_key = "ctrl" if on else "enter"

    async def _save_profile(self, **fields: str) -> None:
        principal = await self._principal()
        if principal is None or all(getattr(principal, k) == v for k, v in fields.items()):
            return
        async with session_scope() as session:
            await accounts.update_profile(session=session, user_id=principal.user_id, **fields)
        get_runtime().principals.forget_user(principal.user_id)

    @rx.event
    def set_browser_language(self, languages: str) -> None:
        """Follow the browser's language list (navigator.languages), until the user picks one."""
        if isinstance(languages, str) and languages.strip():
            self.lang = i18n.pick_language(languages)
            self._show_language()

    def _init_language(self, principal: Principal | None = None) -> list:
        """Pick the language: the user's saved choice, else the browser's (asked once)."""
        if principal is not None and principal.language in i18n.CATALOGS:
            self.lang = principal.language
            self._show_language()
            return []
        if self.lang:
            self._show_language()
            return []
        self.lang = i18n.pick_language(self.router.headers.accept_language or "")
        self._show_language()
        # The websocket's Accept-Language is not always the page's (browsers and emulators differ).
        return [rx.call_script(_detect_language_script(), callback=AuthState.set_browser_language)]

    # ---- identity ----------------------------------------------------------------------------
    def _client_ip(self) -> str:
        return self.router.session.client_ip or ""

    async def _principal(self) -> Principal | None:
        """The live session behind this event's connection, or None.

        The connection's cookie never reaches the state: `state/socket.py` keeps only its hash.
        """
        return await get_runtime().principal_by_hash(self.router.headers.raw_headers.get(SESSION_HEADER))

    async def _require(self, *, admin: bool = False, two_factor_setup: bool = False) -> Principal:
        """The signed-in, approved user (an admin when `admin`); SignedOut otherwise.

        A user the two-factor policy covers who has not turned it on is sent to /two-factor (only the set-up's
        own handlers pass `two_factor_setup`).
        """
        principal = await self._principal()
        if principal is None:
            raise SignedOut()
        if not principal.is_active:
            raise SignedOut("/pending")
        if not two_factor_setup and await self._two_factor_due(principal, cached=True):
            raise SignedOut("/two-factor")
        if admin and not principal.is_admin:
            raise SignedOut("/")
        return principal

    def _show(self, principal: Principal) -> bool:
        """Copy display values; True when a different user than before is now signed in on this tab."""
        changed = self._shown_user != principal.user_id
        self._shown_user = principal.user_id
        self.user_name = principal.display_name
        self.user_email = principal.email
        self.user_role = str(principal.role)
        config = get_runtime().settings.auth_providers
        self.user_provider = next((p.name for p in config if p.id == principal.provider), principal.provider)
        return changed

    async def _two_factor_due(self, principal: Principal, *, cached: bool = False) -> bool:
        """Whether the admin policy wants this user to turn two-factor sign-in on before anything else.

        Events (`cached`) trust a "not due" answer for NOT_DUE_TTL seconds: a policy change reaches open tabs
        within that time, and page loads always ask the database.
        """
        if principal.provider != "local" or not principal.is_active:
            return False
        if cached and time.monotonic() - _not_due.get(principal.user_id, -NOT_DUE_TTL) < NOT_DUE_TTL:
            return False
        async with session_scope(read_only=True) as session:
            due = await twofactor.setup_due(
                session=session, settings=get_runtime().settings, user_id=principal.user_id, role=principal.role,
                provider=principal.provider,
            )  # fmt: skip
        if len(_not_due) > 10_000:
            _not_due.clear()
        if not due:
            _not_due[principal.user_id] = time.monotonic()
        return due

    async def _enter(
        self, *, admin: bool = False, allow_pending: bool = False, two_factor_setup: bool = False
    ) -> tuple[Principal | None, list]:
        """Page guard for on_load: (principal, events); principal None means "redirected away"."""
        principal = await self._principal()
        url = self.router.url
        path = url.path + (f"?{url.query}" if url.query else "")
        if principal is None:
            target = "/login" if path in ("/", "") else f"/login?next={quote(path, safe='/')}"
            return None, [rx.redirect(target, replace=True)]
        if not principal.is_active and not allow_pending:
            return None, [rx.redirect("/pending", replace=True)]
        if not two_factor_setup and await self._two_factor_due(principal):
            return None, [rx.redirect("/two-factor", replace=True)]
        if admin and not principal.is_admin:
            return None, [rx.redirect("/", replace=True)]
        self._show(principal)
        # The account's theme follows the user to every device (components/prefs.py theme_appliers).
        mode = principal.theme or "system"
        theme = rx.call_script(
            f"(function(){{var s='';try{{s=(localStorage.getItem('theme')||'system').replace(/\"/g,'')}}catch(e){{}}"
            f"var b=document.getElementById('rubin-theme-{mode}');if(b&&s!=='{mode}')b.click();}})()"
        )
        return principal, [*self._init_language(principal), theme]


def on_backend_error(exception: Exception) -> EventSpec:
    """App-wide handler: a dead session sends the tab to the login page; anything else is logged."""
    if isinstance(exception, SignedOut):
        return rx.redirect(exception.target)
    return default_backend_exception_handler(exception)
