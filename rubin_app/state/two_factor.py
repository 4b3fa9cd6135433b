"""The state behind the two-factor section (account page and the forced set-up page): turn on with a QR code
and a first code, see how many recovery codes are left, get new ones, turn off. Every handler re-checks the
session; the secret shown during set-up is the user's own, the server keeps only its encrypted form."""

from __future__ import annotations

from typing import Any

import reflex as rx

from rubin_app import i18n
from rubin_app.accounts import passkeys, twofactor
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState
from rubin_app.vault.state_seal import open_state, seal_state

SECRET_VARS = ("tf_secret", "tf_qr", "tf_codes", "_pk_challenge")


class TwoFactorState(AuthState):
    """Two-factor sign-in of the signed-in local account."""

    tf_local: bool = False
    tf_enabled: bool = False
    tf_codes_left: int = 0
    tf_secret: str = ""  # shown while setting up, until confirmed
    tf_qr: str = ""
    tf_codes: list[str] = []  # new recovery codes, shown once
    tf_error: str = ""
    tf_notice: str = ""
    tf_passkeys: list[dict[str, str]] = []  # id, name, created
    _pk_challenge: str = ""  # the registration under way (server-side only)
    _pk_origin: str = ""

    # ---- at rest: a secret being set up and the recovery codes just shown are sealed (vault/state_seal.py) ----
    def __getstate__(self) -> dict[str, Any]:
        return seal_state(type(self).get_full_name(), super().__getstate__(), SECRET_VARS)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(open_state(type(self).get_full_name(), state))

    def _clear(self) -> None:
        self.tf_error = self.tf_notice = ""

    def _fail(self, exc: InputError) -> None:
        self.tf_error, self.tf_notice = self._t(f"err_{exc.code}", **exc.params), ""

    @rx.event
    async def load_two_factor(self) -> None:
        """Read whether two-factor sign-in is on, how many recovery codes are left, the passkeys."""
        await self._reload()
        self.tf_secret, self.tf_qr, self.tf_codes = "", "", []  # shown once: not again after a reload
        self._clear()

    async def _reload(self) -> None:
        principal = await self._require(two_factor_setup=True)
        self.tf_local = principal.provider == "local"
        async with session_scope(read_only=True) as session:
            status = await twofactor.get_status(session=session, user_id=principal.user_id)
            keys = await passkeys.list_passkeys(session=session, user_id=principal.user_id)
        self.tf_enabled, self.tf_codes_left = status.enabled, status.codes_left
        lang = self.lang or i18n.DEFAULT_LANGUAGE
        self.tf_passkeys = [{"id": str(k.id), "name": k.name, "created": i18n.when(k.created_at, lang)} for k in keys]

    @rx.event
    async def begin_two_factor(self) -> None:
        """Make a new secret and show it as a QR code and as text."""
        principal = await self._require(two_factor_setup=True)
        self._clear()
        try:
            async with session_scope() as session:
                setup = await twofactor.begin_setup(
                    session=session, secret_key=get_runtime().secret_key, user_id=principal.user_id
                )
        except InputError as exc:
            self._fail(exc)
            return
        self.tf_secret, self.tf_qr, self.tf_codes = setup.secret, setup.qr, []

    @rx.event
    async def confirm_two_factor(self, form: dict[str, str]) -> None:
        """Turn it on with the first code from the app; show the recovery codes."""
        principal = await self._require(two_factor_setup=True)
        try:
            async with session_scope() as session:
                codes = await twofactor.confirm_setup(
                    session=session, secret_key=get_runtime().secret_key, user_id=principal.user_id,
                    code=str(form.get("code", ""))[:100], ip=self._client_ip(),
                )  # fmt: skip
        except InputError as exc:
            self._fail(exc)
            return
        self.tf_enabled, self.tf_codes, self.tf_codes_left = True, codes, len(codes)
        self.tf_secret = self.tf_qr = ""
        self.tf_error, self.tf_notice = "", self._t("two_factor_turned_on")

    @rx.event
    async def regenerate_codes(self, form: dict[str, str]) -> None:
        """Replace the recovery codes (a current code confirms it)."""
        principal = await self._require(two_factor_setup=True)
        try:
            async with session_scope() as session:
                codes = await twofactor.regenerate_codes(
                    session=session, secret_key=get_runtime().secret_key, user_id=principal.user_id,
                    code=str(form.get("code", ""))[:100], ip=self._client_ip(),
                )  # fmt: skip
        except InputError as exc:
            self._fail(exc)
            return
        self.tf_codes, self.tf_codes_left = codes, len(codes)
        self._clear()

    @rx.event
    async def disable_two_factor(self, form: dict[str, str]) -> None:
        """Turn it off: the password and a current code."""
        principal = await self._require(two_factor_setup=True)
        rt = get_runtime()
        try:
            async with session_scope() as session:
                await twofactor.disable(
                    session=session, settings=rt.settings, secret_key=rt.secret_key, user_id=principal.user_id,
                    password=str(form.get("password", "")), code=str(form.get("code", ""))[:100],
                    keep_session_id=principal.session_id, ip=self._client_ip(),
                )  # fmt: skip
        except InputError as exc:
            self._fail(exc)
            return
        self.tf_enabled, self.tf_codes_left, self.tf_codes, self.tf_passkeys = False, 0, [], []
        self.tf_error, self.tf_notice = "", self._t("two_factor_turned_off")

    @rx.event
    def hide_codes(self) -> None:
        """The user saved the recovery codes: stop showing them."""
        self.tf_codes = []

    @rx.event
    async def begin_passkey(self):
        """Ask the browser to make a passkey for this site (the challenge stays here, server-side)."""
        principal = await self._require(two_factor_setup=True)
        self._clear()
        origin = self.router.headers.origin or ""
        try:
            async with session_scope(read_only=True) as session:
                options, challenge = await passkeys.registration_options(
                    session=session, user_id=principal.user_id, origin=origin
                )
        except InputError as exc:
            self._fail(exc)
            return None
        self._pk_challenge, self._pk_origin = challenge, origin
        script = (
            "(async()=>{try{const o=PublicKeyCredential.parseCreationOptionsFromJSON(" + options + ");"
            "const c=await navigator.credentials.create({publicKey:o});return JSON.stringify(c.toJSON());}"
            "catch(e){return '';}})()"
        )
        return rx.call_script(script, callback=TwoFactorState.finish_passkey)

    @rx.event
    async def finish_passkey(self, credential: str) -> None:
        """Keep the passkey the browser made (verified against the challenge asked for)."""
        principal = await self._require(two_factor_setup=True)
        challenge, origin, self._pk_challenge = self._pk_challenge, self._pk_origin, ""
        name = self._t("passkey_name", number=len(self.tf_passkeys) + 1)
        try:
            async with session_scope() as session:
                await passkeys.add_passkey(
                    session=session, user_id=principal.user_id, credential=str(credential or "")[:20_000],
                    challenge=challenge, origin=origin, name=name,
                    ip=self._client_ip(),
                )  # fmt: skip
        except InputError as exc:
            self._fail(exc)
            return
        await self._reload()
        self.tf_error, self.tf_notice = "", self._t("passkey_added")

    @rx.event
    async def delete_passkey(self, passkey_id: str) -> None:
        """Remove a passkey."""
        principal = await self._require(two_factor_setup=True)
        try:
            async with session_scope() as session:
                await passkeys.delete_passkey(
                    session=session, user_id=principal.user_id, passkey_id=int(passkey_id), ip=self._client_ip()
                )
        except (InputError, ValueError):
            self._fail(InputError("passkey_not_found"))
            return
        await self._reload()
        self._clear()
