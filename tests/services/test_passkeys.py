"""Passkeys as a second factor on real SQLite and PostgreSQL, with a software authenticator: added only with
two-factor on, the sign-in step passes with a valid assertion, a replayed or foreign one is refused."""

from __future__ import annotations

import time

import pyotp
import pytest

from rubin_app.accounts import passkeys, twofactor
from rubin_app.services.chats import InputError
from tests.fakes.authenticator import SoftAuthenticator
from tests.services.test_twofactor import KEY, actions, new_user, password_step, turn_on

ORIGIN = "https://chat.example.com"


async def add(db_scope, user_id: int, key: SoftAuthenticator, origin: str = ORIGIN) -> None:
    async with db_scope() as s:
        options, challenge = await passkeys.registration_options(session=s, user_id=user_id, origin=ORIGIN)
    async with db_scope() as s:
        await passkeys.add_passkey(
            session=s, user_id=user_id, credential=key.register(options, origin), challenge=challenge,
            origin=ORIGIN, name="Key",
        )  # fmt: skip


async def passkey_step(db_scope, settings, token: str, answer) -> str:
    """Ask for options, let `answer(options)` reply, finish the step: "ok" or the error code."""
    try:
        async with db_scope() as s:
            options = await passkeys.login_options(session=s, token=token, origin=ORIGIN)
        async with db_scope() as s:
            await passkeys.finish_login(
                session=s, settings=settings, token=token, credential=answer(options), origin=ORIGIN
            )
    except InputError as exc:
        return exc.code
    return "ok"


async def test_a_passkey_needs_two_factor_on_and_its_own_challenge(db_scope, make_settings) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    with pytest.raises(InputError) as info:
        async with db_scope() as s:
            await passkeys.registration_options(session=s, user_id=user_id, origin=ORIGIN)
    assert info.value.code == "two_factor_off"
    await turn_on(db_scope, user_id)
    key = SoftAuthenticator()
    with pytest.raises(InputError) as info:  # made for another site
        await add(db_scope, user_id, key, origin="https://evil.example")
    assert info.value.code == "passkey_failed"
    await add(db_scope, user_id, key)
    async with db_scope() as s:
        assert [k.name for k in await passkeys.list_passkeys(session=s, user_id=user_id)] == ["Key"]
    assert await actions(db_scope, "passkey_added") == 1


async def test_the_second_step_with_a_passkey(db_scope, make_settings) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    await turn_on(db_scope, user_id)
    key, stranger = SoftAuthenticator(), SoftAuthenticator()
    await add(db_scope, user_id, key)

    token = await password_step(db_scope, settings)
    assert await passkey_step(db_scope, settings, token, lambda o: stranger.assert_(o, ORIGIN)) == "passkey_failed"
    assert await passkey_step(db_scope, settings, token, lambda o: key.assert_(o, "https://evil.example")) == (
        "passkey_failed"
    )
    replayed: list[str] = []

    def answer(options: str) -> str:
        replayed.append(key.assert_(options, ORIGIN))
        return replayed[-1]

    assert await passkey_step(db_scope, settings, token, answer) == "ok"
    assert await actions(db_scope, "sign_in") == 1

    # The same answer again, on a new password step: its challenge is not this step's.
    token = await password_step(db_scope, settings)
    assert await passkey_step(db_scope, settings, token, lambda _o: replayed[0]) == "passkey_failed"
    assert await passkey_step(db_scope, settings, token, lambda o: key.assert_(o, ORIGIN)) == "ok"
    assert await actions(db_scope, "sign_in_failed") == 3


async def test_turning_two_factor_off_removes_the_passkeys(db_scope, make_settings) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    secret, _ = await turn_on(db_scope, user_id)
    await add(db_scope, user_id, SoftAuthenticator())
    async with db_scope() as s:
        (key,) = await passkeys.list_passkeys(session=s, user_id=user_id)
        assert key.id is not None
    with pytest.raises(InputError):
        async with db_scope() as s:  # not another user's
            await passkeys.delete_passkey(session=s, user_id=user_id + 1, passkey_id=key.id)
    async with db_scope() as s:
        await twofactor.disable(
            session=s, settings=settings, secret_key=KEY, user_id=user_id, password="correct horse battery",
            code=pyotp.TOTP(secret).at(time.time() + 30), keep_session_id=None,
        )  # fmt: skip
    async with db_scope() as s:
        assert await passkeys.list_passkeys(session=s, user_id=user_id) == []
