"""Two-factor sign-in on real SQLite and PostgreSQL: set-up, code windows, replay, recovery codes, the pending
step's expiry and binding, throttling, turning off, the admin policy, and the secret encrypted at rest."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import update
from sqlmodel import col, func, select

from rubin_app.accounts import totp, twofactor
from rubin_app.accounts.twofactor_models import PendingLogin, RecoveryCode, TotpSecret
from rubin_app.models import AppSetting, AuditEvent, AuthSession, Role, User
from rubin_app.services import accounts
from rubin_app.services.chats import InputError
from rubin_app.vault.sealing import UnreadableValue
from rubin_app.vault.service import get_vault

PASSWORD = "correct horse battery"
KEY = "k" * 64  # the runtime's secret key in the app
IP = "203.0.113.7"


async def wait_for_fresh_step() -> None:
    """Codes are computed and checked within one 30 s step: wait when the step is about to end."""
    left = totp.STEP_SECONDS - time.time() % totp.STEP_SECONDS
    if left < 3:
        await asyncio.sleep(left + 0.1)


def code_at(secret: str, offset: int = 0) -> str:
    """The code of the step `offset` steps from now."""
    return pyotp.TOTP(secret).generate_otp(int(time.time()) // 30 + offset)


async def new_user(db_scope, settings, email: str = "ann@example.com") -> int:
    async with db_scope() as s:
        user = await accounts.sign_up_local(session=s, settings=settings, email=email, password=PASSWORD)
    assert user.id is not None
    return user.id


async def turn_on(db_scope, user_id: int) -> tuple[str, list[str]]:
    """Set up and confirm two-factor sign-in; the secret and the recovery codes."""
    await wait_for_fresh_step()
    async with db_scope() as s:
        setup = await twofactor.begin_setup(session=s, secret_key=KEY, user_id=user_id)
    async with db_scope() as s:
        codes = await twofactor.confirm_setup(session=s, secret_key=KEY, user_id=user_id, code=code_at(setup.secret))
    return setup.secret, codes


async def forget_last_step(db_scope, user_id: int) -> None:
    """As if the set-up code had been accepted long ago (so this step's codes are fresh)."""
    async with db_scope() as s:
        await s.exec(update(TotpSecret).where(col(TotpSecret.user_id) == user_id).values(last_step=None))


async def password_step(db_scope, settings, email: str = "ann@example.com") -> str:
    """Sign in with the password: the second step's token (the password alone opens no session)."""
    with pytest.raises(accounts.SecondFactorNeeded) as info:
        async with db_scope() as s:
            await accounts.sign_in_local(session=s, settings=settings, email=email, password=PASSWORD, ip=IP)
    async with db_scope() as s:
        return await twofactor.start_login(
            session=s, user_id=info.value.user_id, lifetime=twofactor.PENDING_LIFETIME, ip=IP
        )


async def code_step(db_scope, settings, token: str, code: str) -> str:
    """The second step: "ok" or the error code."""
    try:
        async with db_scope() as s:
            await twofactor.finish_login(session=s, settings=settings, secret_key=KEY, token=token, code=code, ip=IP)
    except InputError as exc:
        return exc.code
    return "ok"


async def actions(db_scope, action: str) -> int:
    async with db_scope() as s:
        return int((await s.exec(select(func.count()).where(AuditEvent.action == action))).one())


# --------------------------------------------------------------------------- set-up


async def test_turning_on_needs_a_current_code_and_gives_ten_recovery_codes(db_scope, make_settings) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    async with db_scope() as s:
        setup = await twofactor.begin_setup(session=s, secret_key=KEY, user_id=user_id)
    assert setup.uri.startswith("otpauth://totp/") and setup.secret in setup.uri
    assert setup.qr.startswith("data:image/svg+xml")
    with pytest.raises(InputError) as info:
        async with db_scope() as s:
            await twofactor.confirm_setup(session=s, secret_key=KEY, user_id=user_id, code="000000x")
    assert info.value.code == "wrong_code"
    async with db_scope() as s:
        assert await twofactor.get_status(session=s, user_id=user_id) == twofactor.Status(False, 0)
    await wait_for_fresh_step()
    async with db_scope() as s:
        codes = await twofactor.confirm_setup(session=s, secret_key=KEY, user_id=user_id, code=code_at(setup.secret))
    assert len(codes) == 10 == len(set(codes))
    async with db_scope() as s:
        assert await twofactor.get_status(session=s, user_id=user_id) == twofactor.Status(True, 10)
        stored = await s.get(TotpSecret, user_id)
    assert stored is not None and setup.secret not in stored.secret  # sealed with the user's data key
    async with db_scope() as s:
        vault = get_vault()
        assert (await vault.prime(s, user_id)).open(totp.SEALED_COLUMN, stored.secret) == setup.secret
    other = await new_user(db_scope, settings, "boris@example.com")
    async with db_scope() as s:  # bound to its user: copied onto another row it does not open
        with pytest.raises(UnreadableValue):
            (await vault.prime(s, other)).open(totp.SEALED_COLUMN, stored.secret)
    assert await actions(db_scope, "two_factor_on") == 1


async def test_the_password_alone_opens_no_session(db_scope, make_settings) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    await turn_on(db_scope, user_id)
    signed_in_before = await actions(db_scope, "sign_in")
    await password_step(db_scope, settings)
    async with db_scope() as s:
        assert int((await s.exec(select(func.count()).select_from(AuthSession))).one()) == 0
    assert await actions(db_scope, "sign_in") == signed_in_before  # no "signed in" until the code


# --------------------------------------------------------------------------- codes


@pytest.mark.parametrize(
    ("offset", "outcome"), [(-1, "ok"), (0, "ok"), (1, "ok"), (-2, "wrong_code"), (2, "wrong_code")]
)
async def test_the_previous_and_next_30_seconds_are_accepted(db_scope, make_settings, offset, outcome) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    secret, _ = await turn_on(db_scope, user_id)
    await forget_last_step(db_scope, user_id)
    token = await password_step(db_scope, settings)
    await wait_for_fresh_step()
    assert await code_step(db_scope, settings, token, code_at(secret, offset)) == outcome


async def test_a_code_is_accepted_once(db_scope, make_settings) -> None:
    """Replay: a code already used (or one older than it) is refused in its window, on another attempt too."""
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    secret, _ = await turn_on(db_scope, user_id)
    await forget_last_step(db_scope, user_id)
    await wait_for_fresh_step()
    assert await code_step(db_scope, settings, await password_step(db_scope, settings), code_at(secret)) == "ok"
    token = await password_step(db_scope, settings)
    assert await code_step(db_scope, settings, token, code_at(secret)) == "code_used"
    assert await code_step(db_scope, settings, token, code_at(secret, -1)) == "code_used"
    assert await code_step(db_scope, settings, token, code_at(secret, 1)) == "ok"  # the next one still works


async def test_two_requests_with_the_same_code_sign_in_once(db_scope, make_settings) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    secret, _ = await turn_on(db_scope, user_id)
    await forget_last_step(db_scope, user_id)
    tokens = [await password_step(db_scope, settings) for _ in range(2)]
    await wait_for_fresh_step()
    code = code_at(secret)
    results = await asyncio.gather(*(code_step(db_scope, settings, t, code) for t in tokens))
    assert sorted(results) == ["code_used", "ok"]


async def test_a_recovery_code_works_once(db_scope, make_settings) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    _, codes = await turn_on(db_scope, user_id)
    token = await password_step(db_scope, settings)
    assert await code_step(db_scope, settings, token, f"  {codes[3].upper()} ") == "ok"  # as typed from paper
    token = await password_step(db_scope, settings)
    assert await code_step(db_scope, settings, token, codes[3]) == "recovery_code_used"
    assert await code_step(db_scope, settings, token, "abcd-efgh-jkmn") == "wrong_code"
    assert await code_step(db_scope, settings, token, codes[4].replace("-", "")) == "ok"
    async with db_scope() as s:
        assert (await twofactor.get_status(session=s, user_id=user_id)).codes_left == 8
    assert await actions(db_scope, "recovery_code_used") == 2


async def test_new_recovery_codes_replace_the_old_ones(db_scope, make_settings) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    secret, old = await turn_on(db_scope, user_id)
    with pytest.raises(InputError) as info:  # the set-up code cannot confirm again
        async with db_scope() as s:
            await twofactor.regenerate_codes(session=s, secret_key=KEY, user_id=user_id, code=code_at(secret))
    assert info.value.code == "code_used"
    async with db_scope() as s:
        new = await twofactor.regenerate_codes(session=s, secret_key=KEY, user_id=user_id, code=code_at(secret, 1))
    assert len(new) == 10 and not set(new) & set(old)
    assert await code_step(db_scope, settings, await password_step(db_scope, settings), old[0]) == "wrong_code"
    assert await code_step(db_scope, settings, await password_step(db_scope, settings), new[0]) == "ok"
    assert await actions(db_scope, "recovery_codes_new") == 1


# --------------------------------------------------------------------------- the pending step


async def test_the_second_step_expires_and_opens_one_session(db_scope, make_settings) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    _, codes = await turn_on(db_scope, user_id)
    token = await password_step(db_scope, settings)
    async with db_scope() as s:  # five minutes later
        await s.exec(update(PendingLogin).values(expires_at=PendingLogin.expires_at - timedelta(minutes=6)))
    assert await code_step(db_scope, settings, token, codes[0]) == "code_expired"
    assert await code_step(db_scope, settings, "made-up-token", codes[0]) == "code_expired"
    token = await password_step(db_scope, settings)
    assert await code_step(db_scope, settings, token, codes[0]) == "ok"
    assert await code_step(db_scope, settings, token, codes[1]) == "code_expired"  # a token signs in once
    async with db_scope() as s:
        assert (await twofactor.get_status(session=s, user_id=user_id)).codes_left == 9  # the expired try used none


async def test_wrong_codes_are_throttled_and_a_new_password_step_does_not_reset_them(db_scope, make_settings) -> None:
    settings = make_settings(login_max_failures=3)
    user_id = await new_user(db_scope, settings)
    secret, codes = await turn_on(db_scope, user_id)
    await forget_last_step(db_scope, user_id)
    for _ in range(3):
        token = await password_step(db_scope, settings)  # each time a fresh, correct password step
        assert await code_step(db_scope, settings, token, "123456" if code_at(secret) != "123456" else "654321") == (
            "wrong_code"
        )
    token = await password_step(db_scope, settings)
    assert await code_step(db_scope, settings, token, code_at(secret)) == "locked_out"
    assert await code_step(db_scope, settings, token, codes[0]) == "locked_out"
    async with db_scope() as s:
        failed = (await s.exec(select(func.count()).where(AuditEvent.action == "sign_in_failed"))).one()
        assert (await twofactor.get_status(session=s, user_id=user_id)).codes_left == 10  # refused ones unused
    assert int(failed) == 3


# --------------------------------------------------------------------------- turning off, the policy


async def test_turning_off_needs_the_password_and_a_current_code(db_scope, make_settings) -> None:
    settings = make_settings()
    user_id = await new_user(db_scope, settings)
    secret, _ = await turn_on(db_scope, user_id)

    async def off(password: str, code: str) -> str:
        try:
            async with db_scope() as s:
                await twofactor.disable(
                    session=s, settings=settings, secret_key=KEY, user_id=user_id, password=password, code=code,
                    keep_session_id=None, ip=IP,
                )  # fmt: skip
        except InputError as exc:
            return exc.code
        return "ok"

    assert await off("not my password", code_at(secret, 1)) == "wrong_password"
    assert await off(PASSWORD, "12345") == "wrong_code"
    async with db_scope() as s:
        assert await twofactor.is_enabled(session=s, user_id=user_id)
    assert await off(PASSWORD, code_at(secret, 1)) == "ok"
    async with db_scope() as s:
        assert await twofactor.get_status(session=s, user_id=user_id) == twofactor.Status(False, 0)
        await accounts.sign_in_local(session=s, settings=settings, email="ann@example.com", password=PASSWORD)
    assert await actions(db_scope, "two_factor_off") == 2  # the wrong password (ok=False), then the change


async def test_the_policy_covers_admins_or_everyone_with_local_accounts(db_scope, make_settings) -> None:
    settings = make_settings()
    admin_id = await new_user(db_scope, settings, "admin@example.com")  # the first account is an admin
    user_id = await new_user(db_scope, settings, "user@example.com")

    async def due() -> tuple[bool, bool]:
        async with db_scope() as s:
            admin, user = await s.get(User, admin_id), await s.get(User, user_id)
            assert admin is not None and user is not None and admin.role == Role.admin
            return (
                await twofactor.setup_due(session=s, settings=settings, user_id=admin_id, role=admin.role,
                                          provider="local"),
                await twofactor.setup_due(session=s, settings=settings, user_id=user_id, role=user.role,
                                          provider="local"),
            )  # fmt: skip

    assert await due() == (False, False)
    with pytest.raises(InputError) as info:
        async with db_scope() as s:
            await twofactor.set_requirement(session=s, actor_id=user_id, value="everyone", settings=settings)
    assert info.value.code == "admin_only"
    with pytest.raises(InputError) as info:  # the admin would shut themself out: their own first
        async with db_scope() as s:
            await twofactor.set_requirement(session=s, actor_id=admin_id, value="admins", settings=settings)
    assert info.value.code == "two_factor_self_first"
    async with db_scope() as s:  # as if ADMIN set REQUIRE_TWO_FACTOR=admins in the environment
        s.add(AppSetting(key=twofactor.POLICY_KEY, value='"admins"'))
    assert await due() == (True, False)
    await turn_on(db_scope, admin_id)
    assert await due() == (False, False)
    for value, expected in (("nobody", (False, False)), ("everyone", (False, True))):
        async with db_scope() as s:
            assert (
                await twofactor.set_requirement(session=s, actor_id=admin_id, value=value, settings=settings) == value
            )
        assert await due() == expected
    async with db_scope() as s:  # a provider's account: its provider does two-factor
        assert not await twofactor.setup_due(session=s, settings=settings, user_id=user_id, role=Role.user,
                                             provider="github")  # fmt: skip
    assert await due() == (False, True)
    with pytest.raises(InputError):
        async with db_scope() as s:
            await twofactor.set_requirement(session=s, actor_id=admin_id, value="some", settings=settings)


async def test_the_config_default_applies_until_an_admin_chooses(db_scope, make_settings) -> None:
    settings = make_settings(require_two_factor="everyone")
    await new_user(db_scope, settings)
    async with db_scope() as s:
        assert await twofactor.get_requirement(session=s, settings=settings) == "everyone"


async def test_deleting_the_account_deletes_its_second_factor(db_scope, make_settings) -> None:
    settings = make_settings()
    await new_user(db_scope, settings, "admin@example.com")  # the last admin cannot delete themself
    user_id = await new_user(db_scope, settings)
    await turn_on(db_scope, user_id)
    await password_step(db_scope, settings)
    async with db_scope() as s:
        await accounts.delete_account(session=s, user_id=user_id, actor_id=user_id)
    async with db_scope() as s:
        for table in (TotpSecret, RecoveryCode, PendingLogin):
            assert int((await s.exec(select(func.count()).select_from(table))).one()) == 0, table


async def test_an_admin_resets_a_lost_second_factor(db_scope, make_settings) -> None:
    settings = make_settings()
    admin_id = await new_user(db_scope, settings, "admin@example.com")
    user_id = await new_user(db_scope, settings)

    async def reset(actor_id: int, email: str) -> str:
        try:
            async with db_scope() as s:
                await twofactor.reset(session=s, actor_id=actor_id, email=email, ip=IP)
        except InputError as exc:
            return exc.code
        return "ok"

    assert await reset(admin_id, "ann@example.com") == "two_factor_off"
    await turn_on(db_scope, user_id)
    assert await reset(user_id, "ann@example.com") == "admin_only"
    assert await reset(admin_id, "nobody@example.com") == "account_not_found"
    assert await reset(admin_id, " Ann@Example.com ") == "ok"
    async with db_scope() as s:
        assert await twofactor.get_status(session=s, user_id=user_id) == twofactor.Status(False, 0)
        await accounts.sign_in_local(session=s, settings=settings, email="ann@example.com", password=PASSWORD)
        event = (await s.exec(select(AuditEvent).where(AuditEvent.action == "two_factor_off"))).one()
    assert (event.user_id, event.actor_id, event.detail) == (user_id, admin_id, "reset by an admin")
