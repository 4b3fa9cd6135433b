"""Passkeys (WebAuthn, PyPI `webauthn`) as a second factor: an account with two-factor sign-in on may add
passkeys and, at the second sign-in step, use one instead of a code. Passwordless sign-in is not offered.

The relying party is the page's own origin (scheme://host[:port]) and its host name as RP ID; the routes and
states pass what they checked (same-origin forms, the websocket's Origin check). Challenges live server-side:
the registration's in the tab's state, the sign-in's in the pending step's row.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.accounts import twofactor
from rubin_app.accounts.twofactor_models import Passkey, PendingLogin
from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.models import User
from rubin_app.services import audit
from rubin_app.services.chats import InputError

if TYPE_CHECKING:  # webauthn (with cryptography's X.509 and pyasn1, ~14 MB) is imported when a passkey is used
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor

MAX_PASSKEYS = 10
RP_NAME = "Rubin AI"


def rp_id_of(origin: str) -> str:
    """The RP ID of an origin: its host name."""
    return urlsplit(origin).hostname or ""


def _descriptors(keys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    import webauthn
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor

    return [PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(k.credential_id)) for k in keys]


async def list_passkeys(*, session: AsyncSession, user_id: int) -> list[Passkey]:
    """The user's passkeys, oldest first."""
    stmt = select(Passkey).where(Passkey.user_id == user_id).order_by(col(Passkey.id))
    return list((await session.exec(stmt)).all())


async def registration_options(*, session: AsyncSession, user_id: int, origin: str) -> tuple[str, str]:
    """Options for navigator.credentials.create (JSON) and their challenge (base64url, kept by the caller)."""
    user = await session.get(User, user_id)
    if user is None or not await twofactor.is_enabled(session=session, user_id=user_id):
        raise InputError("two_factor_off")
    keys = await list_passkeys(session=session, user_id=user_id)
    if len(keys) >= MAX_PASSKEYS:
        raise InputError("too_many_passkeys")
    import webauthn
    from webauthn.helpers import bytes_to_base64url
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    options = webauthn.generate_registration_options(
        rp_id=rp_id_of(origin), rp_name=RP_NAME, user_name=user.email or str(user_id), user_id=str(user_id).encode(),
        user_display_name=user.display_name, exclude_credentials=_descriptors(keys),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED, user_verification=UserVerificationRequirement.PREFERRED
        ),
    )  # fmt: skip
    return webauthn.options_to_json(options), bytes_to_base64url(options.challenge)


async def add_passkey(
    *, session: AsyncSession, user_id: int, credential: str, challenge: str, origin: str, name: str, ip: str = ""
) -> Passkey:
    """Verify a new credential against its challenge and keep it."""
    if not challenge or not await twofactor.is_enabled(session=session, user_id=user_id):
        raise InputError("passkey_failed")
    import webauthn
    from webauthn.helpers import bytes_to_base64url
    from webauthn.helpers.exceptions import WebAuthnException

    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=webauthn.base64url_to_bytes(challenge),
            expected_rp_id=rp_id_of(origin), expected_origin=origin,
        )  # fmt: skip
    except (WebAuthnException, ValueError, json.JSONDecodeError):
        raise InputError("passkey_failed") from None
    key = Passkey(
        user_id=user_id, credential_id=bytes_to_base64url(verified.credential_id),
        public_key=bytes_to_base64url(verified.credential_public_key), sign_count=verified.sign_count,
        name=(name.strip() or "Passkey")[:100],
    )  # fmt: skip
    session.add(key)
    await audit.record(session=session, action=audit.PASSKEY_ADDED, user_id=user_id, actor_id=user_id, ip=ip)
    await session.flush()
    return key


async def delete_passkey(*, session: AsyncSession, user_id: int, passkey_id: int, ip: str = "") -> None:
    """Remove one of the user's passkeys."""
    mine = (col(Passkey.id) == passkey_id) & (col(Passkey.user_id) == user_id)
    if int((await session.exec(delete(Passkey).where(mine))).rowcount or 0) == 0:
        raise InputError("passkey_not_found")
    await audit.record(session=session, action=audit.PASSKEY_REMOVED, user_id=user_id, actor_id=user_id, ip=ip)
    await session.flush()


async def login_options(*, session: AsyncSession, token: str, origin: str) -> str:
    """Options for navigator.credentials.get at a pending second step (its challenge kept on the step)."""
    pending, user = await twofactor.pending_step(session=session, token=token)
    assert user.id is not None
    keys = await list_passkeys(session=session, user_id=user.id)
    if not keys:
        raise InputError("no_passkey")
    import webauthn
    from webauthn.helpers import bytes_to_base64url
    from webauthn.helpers.structs import UserVerificationRequirement

    options = webauthn.generate_authentication_options(
        rp_id=rp_id_of(origin), allow_credentials=_descriptors(keys),
        user_verification=UserVerificationRequirement.PREFERRED,
    )  # fmt: skip
    pending.challenge = bytes_to_base64url(options.challenge)
    session.add(pending)
    await session.flush()
    return webauthn.options_to_json(options)


async def finish_login(
    *, session: AsyncSession, settings: Settings, token: str, credential: str, origin: str, ip: str = ""
) -> User:
    """The second step with a passkey (throttled like a code); the user, signed in."""

    async def check(user: User, pending: PendingLogin) -> str:
        await _verify_assertion(session, user, pending, credential[:20_000], origin)
        return "passkey"

    return await twofactor.finish_second_step(session=session, settings=settings, token=token, check=check, ip=ip)


async def _verify_assertion(
    session: AsyncSession, user: User, pending: PendingLogin, credential: str, origin: str
) -> None:
    try:
        raw_id = str(json.loads(credential).get("id", ""))
    except (ValueError, AttributeError):
        raise InputError("passkey_failed") from None
    key = (
        await session.exec(select(Passkey).where(Passkey.user_id == user.id, Passkey.credential_id == raw_id))
    ).first()
    if key is None or not pending.challenge:
        raise InputError("passkey_failed")
    import webauthn
    from webauthn.helpers.exceptions import WebAuthnException

    try:
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=webauthn.base64url_to_bytes(pending.challenge),
            expected_rp_id=rp_id_of(origin), expected_origin=origin,
            credential_public_key=webauthn.base64url_to_bytes(key.public_key),
            credential_current_sign_count=key.sign_count,
        )  # fmt: skip
    except (WebAuthnException, ValueError):
        raise InputError("passkey_failed") from None
    # A challenge answers once; a counter that did not grow (a cloned key) is refused by the library above.
    stmt = (
        update(Passkey)
        .where(col(Passkey.id) == key.id)
        .values(sign_count=verified.new_sign_count, last_used_at=utcnow())
    )
    await session.exec(stmt)
    await session.exec(update(PendingLogin).where(col(PendingLogin.id) == pending.id).values(challenge=""))
