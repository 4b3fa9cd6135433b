"""Accounts on real SQLite and PostgreSQL: sign-up rules, sign-in, provider identities, roles, deletion, export."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from rubin_app.accounts import reauth
from rubin_app.models import AuditEvent, AuthSession, Conversation, Message, Role, User
from rubin_app.services import accounts, credentials, export, sessions
from rubin_app.services.chats import InputError
from tests.factories import make_account, make_conversation, make_exchange

PASSWORD = "correct horse battery"
LIFETIME = timedelta(hours=1)


async def sign_up(db_scope, settings, email: str, password: str = PASSWORD, name: str = "") -> User:
    async with db_scope() as s:
        return await accounts.sign_up_local(
            session=s, settings=settings, email=email, password=password, display_name=name
        )


async def all_users(db_scope) -> list[User]:
    async with db_scope() as s:
        return list((await s.exec(select(User).order_by(col(User.id)))).all())


def call(fn, **kwargs):
    """`fn(session=..., **kwargs)`, waiting for its session."""
    return lambda s: fn(session=s, **kwargs)


async def refused(db_scope, code: str, action) -> InputError:
    """Run `action(session)` and expect InputError(code); the session is committed, so nothing may be half-written."""
    with pytest.raises(InputError) as info:
        async with db_scope() as s:
            await action(s)
    assert info.value.code == code
    return info.value


# --------------------------------------------------------------------------- validation (no database)


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "plain",
        "a@b",
        "two@@example.com",
        "a b@example.com",
        "dot..dot@example.com",
        "x@" + "y." * 130 + "io",
    ],
)
def test_bad_emails_are_refused(email: str) -> None:
    """Empty, malformed and overlong addresses are refused with one clear code."""
    with pytest.raises(InputError) as info:
        credentials.normalize_email(email)
    assert info.value.code == "bad_email"


def test_emails_are_normalised() -> None:
    assert credentials.normalize_email("  Ivan.Petrov@Example.COM ") == "ivan.petrov@example.com"
    assert credentials.normalize_email("Иван@Пример.рф") == "иван@пример.рф"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Анна Каренина", "Анна Каренина"),
        ("Ада 🚀", "Ада 🚀"),
        ("👩‍💻 Dev", "👩‍💻 Dev"),  # an emoji joined with U+200D
        ("نسرین‌زاده", "نسرین‌زاده"),  # Persian with a zero-width non-joiner
        ("  two\n lines\t", "two lines"),
    ],
)
def test_unicode_display_names_are_kept(raw: str, shown: str) -> None:
    """Names in any script, with emoji, are kept as typed (whitespace collapsed to one line)."""
    assert credentials.clean_display_name(raw) == shown


@pytest.mark.parametrize("raw", ["bell\x07", "nul\x00", "evil\u202egnp.exe", "zero\u200bwidth", "private\ue000"])
def test_control_characters_in_names_are_refused(raw: str) -> None:
    """Invisible and direction-changing characters cannot hide in a name."""
    with pytest.raises(InputError) as info:
        credentials.clean_display_name(raw)
    assert info.value.code == "bad_name"


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short1!", "password_too_short"),
        ("x" * 257 + "Ab1", "password_too_long"),
        ("password1234", "password_common"),
        ("ЙЦУКЕНГШЩЗ", "password_common"),
        ("aaaaaaaaaaaaab", "password_common"),
        ("Anna.Lee@example.com", "password_like_email"),
        ("anna.lee", "password_like_email"),
        ("broken-emoji-\ud83d-here", "password_bad_characters"),
        ("tab\tin-the-middle", "password_bad_characters"),
        ("ANNA.LEE.1", None),
    ],
)
def test_weak_passwords_are_refused(password: str, code: str | None) -> None:
    """Too short, well-known, repetitive or the email itself: refused with a reason."""
    if code is None:
        credentials.check_password(password, email="anna.lee@example.com", min_length=10)
        return
    with pytest.raises(InputError) as info:
        credentials.check_password(password, email="anna.lee@example.com", min_length=8)
    assert info.value.code == code


# --------------------------------------------------------------------------- sign-up


async def test_first_account_is_admin_then_users(db_scope, make_settings) -> None:
    """The first person to sign up runs the instance; everyone after is a normal user."""
    settings = make_settings()
    first = await sign_up(db_scope, settings, "Boss@Example.com", name="Босс 👑")
    second = await sign_up(db_scope, settings, "worker@example.com")
    assert (first.role, second.role) == (Role.admin, Role.user)
    assert (first.email, first.external_id, first.display_name) == (
        "boss@example.com",
        "local:boss@example.com",
        "Босс 👑",
    )
    assert second.display_name == "worker"  # default: the email's local part
    assert first.password_hash and PASSWORD not in first.password_hash
    async with db_scope() as s:
        actions = (await s.exec(select(AuditEvent.action, AuditEvent.detail))).all()
    assert ("sign_up", "local role=admin") in actions


async def test_approval_and_admin_emails(db_scope, make_settings) -> None:
    """With REQUIRE_APPROVAL newcomers wait; an ADMIN_EMAILS address becomes admin anyway."""
    settings = make_settings(require_approval=True, admin_emails="chief@example.com")
    await sign_up(db_scope, settings, "first@example.com")
    assert (await sign_up(db_scope, settings, "late@example.com")).role == Role.pending
    assert (await sign_up(db_scope, settings, "Chief@Example.com")).role == Role.admin


async def test_admin_emails_promote_at_sign_in(db_scope, make_settings) -> None:
    """An existing user listed in ADMIN_EMAILS later becomes admin when they next sign in."""
    await sign_up(db_scope, make_settings(), "first@example.com")
    await sign_up(db_scope, make_settings(), "promoted@example.com")
    async with db_scope() as s:
        settings = make_settings(admin_emails="promoted@example.com")
        user = await accounts.sign_in_local(
            session=s, settings=settings, email="promoted@example.com", password=PASSWORD
        )
    assert user.role == Role.admin


async def test_refused_sign_ups_write_nothing(db_scope, make_settings) -> None:
    """A bad email, name or password, or a taken email, creates no account."""
    settings = make_settings()
    await sign_up(db_scope, settings, "taken@example.com")
    cases = [
        ("bad_email", {"email": "x" * 300 + "@example.com"}),
        ("bad_name", {"display_name": "tab\x00"}),
        ("name_too_long", {"display_name": "я" * 101}),
        ("password_like_email", {"email": "same.as.pw@example.com", "password": "same.as.pw@example.com"}),
        ("signup_not_created", {"email": "TAKEN@example.com"}),  # neutral: no "email taken" (enumeration)
    ]
    for code, fields in cases:
        values = {"email": "new@example.com", "password": PASSWORD, **fields}
        await refused(db_scope, code, call(accounts.sign_up_local, settings=settings, **values))
    assert [u.email for u in await all_users(db_scope)] == ["taken@example.com"]


async def test_two_first_sign_ups_at_once_make_one_admin(db_scope, make_settings) -> None:
    """Two people signing up on a fresh instance at the same moment do not both become admin.

    The second sign-up runs while the first one's request is still open (its transaction not yet committed).
    """
    settings = make_settings()
    async with db_scope() as first_request:
        first = await call(accounts.sign_up_local, settings=settings, email="a@example.com", password=PASSWORD)(
            first_request
        )
        second = await sign_up(db_scope, settings, "b@example.com")
    assert (first.role, second.role) == (Role.admin, Role.user)
    assert sorted(u.role for u in await all_users(db_scope)) == [Role.admin, Role.user]


# --------------------------------------------------------------------------- sign-in


async def test_wrong_password_and_unknown_email_look_the_same(db_scope, make_settings) -> None:
    """A failed sign-in never tells whether the email has an account."""
    settings = make_settings()
    await sign_up(db_scope, settings, "user@example.com")
    for email, password in [
        ("user@example.com", "wrong password!"),
        ("user@example.com", "lone surrogate \udc00 in a crafted form"),  # a wrong password, not a crash
        ("ghost@example.com", PASSWORD),
        ("bad", PASSWORD),
    ]:
        sign_in_call = call(accounts.sign_in_local, settings=settings, email=email, password=password)
        await refused(db_scope, "bad_credentials", sign_in_call)
    async with db_scope() as s:
        user = await accounts.sign_in_local(session=s, settings=settings, email=" USER@example.com", password=PASSWORD)
    assert user.email == "user@example.com" and user.last_login_at is not None


async def test_local_login_switched_off(db_scope, make_settings) -> None:
    await sign_up(db_scope, make_settings(), "user@example.com")
    off = make_settings(local_login=False)
    sign_in_call = call(accounts.sign_in_local, settings=off, email="user@example.com", password=PASSWORD)
    await refused(db_scope, "local_login_off", sign_in_call)


# --------------------------------------------------------------------------- provider identities


def external(settings, subject: str, email: str | None, provider: str = "kc", display_name: str = ""):
    """A provider sign-in, waiting for its session."""
    return call(
        accounts.sign_in_external, settings=settings, provider=provider, subject=subject, email=email,
        display_name=display_name,
    )  # fmt: skip


async def test_external_sign_in_creates_once(db_scope, make_settings) -> None:
    """The first provider sign-in opens the account; later ones (even without an email) find it."""
    settings = make_settings()
    async with db_scope() as s:
        user = await external(settings, "abc", "A@Example.com", display_name="Анна 👩‍💻")(s)
    async with db_scope() as s:
        again = await external(settings, "abc", None)(s)
    assert again.id == user.id and (user.email, user.display_name, user.role) == (
        "a@example.com",
        "Анна 👩‍💻",
        Role.admin,
    )


async def test_external_name_with_control_characters_falls_back(db_scope, make_settings) -> None:
    """A provider's odd display name does not block the sign-in: the email's local part is shown instead."""
    async with db_scope() as s:
        user = await external(make_settings(), "x", "ann@example.com", display_name="Ann\u202e")(s)
    assert user.display_name == "ann"


async def test_external_without_email_or_with_a_taken_email(db_scope, make_settings) -> None:
    """No email, or another account's email: refused and no account row is written."""
    settings = make_settings()
    await sign_up(db_scope, settings, "owner@example.com")
    await refused(db_scope, "no_email", external(settings, "n", None))
    await refused(db_scope, "email_taken", external(settings, "t", "Owner@example.com", provider="gh"))
    await refused(db_scope, "login_failed", external(settings, " ", "x@example.com"))
    assert [u.external_id for u in await all_users(db_scope)] == ["local:owner@example.com"]


# --------------------------------------------------------------------------- password, profile


async def test_change_password(db_scope, make_settings) -> None:
    """A wrong current password is refused; a change signs out the other devices but keeps this one."""
    settings = make_settings()
    user = await sign_up(db_scope, settings, "user@example.com")
    assert user.id is not None
    async with db_scope() as s:
        here = await sessions.create(session=s, user_id=user.id, lifetime=LIFETIME)
        phone = await sessions.create(session=s, user_id=user.id, lifetime=LIFETIME)
    async with db_scope() as s:
        keep = await sessions.resolve(session=s, token=here)
    assert keep is not None

    def change(current: str, new: str):
        return call(
            accounts.change_password, settings=settings, user_id=user.id, current=current, new=new,
            keep_session_id=keep.session_id,
        )  # fmt: skip

    await refused(db_scope, "wrong_password", change("nope nope nope", "a new long phrase"))
    await refused(db_scope, "password_like_email", change(PASSWORD, "user@example.com"))
    async with db_scope() as s:
        ended = await change(PASSWORD, "a new long phrase")(s)
    assert ended == 1
    async with db_scope() as s:
        assert await sessions.resolve(session=s, token=here) is not None
        assert await sessions.resolve(session=s, token=phone) is None
    old = call(accounts.sign_in_local, settings=settings, email="user@example.com", password=PASSWORD)
    await refused(db_scope, "bad_credentials", old)
    async with db_scope() as s:
        await accounts.sign_in_local(
            session=s, settings=settings, email="user@example.com", password="a new long phrase"
        )


async def test_profile_settings(db_scope) -> None:
    async with db_scope() as s:
        user = await make_account(s, email="p@example.com")
    assert user.id is not None
    async with db_scope() as s:
        await accounts.update_profile(session=s, user_id=user.id, display_name="Пётр 🙂", language="ru", theme="dark")
    bad = [
        ({"language": "xx"}, "bad_setting"),
        ({"theme": "pink"}, "bad_setting"),
        ({"display_name": " "}, "empty_name"),
    ]
    for fields, code in bad:
        await refused(db_scope, code, call(accounts.update_profile, user_id=user.id, **fields))
    async with db_scope() as s:
        saved = await s.get(User, user.id)
    assert saved is not None and (saved.display_name, saved.language, saved.theme) == ("Пётр 🙂", "ru", "dark")


# --------------------------------------------------------------------------- deletion and export


async def test_delete_account_removes_data_but_keeps_the_audit_trail(db_scope, make_settings) -> None:
    """Deleting an account removes its chats, messages and sessions; the other user and the audit rows stay."""
    settings = make_settings()
    admin = await sign_up(db_scope, settings, "admin@example.com")
    leaver = await sign_up(db_scope, settings, "leaver@example.com")
    assert admin.id is not None and leaver.id is not None
    async with db_scope() as s:
        for owner in (admin.id, leaver.id):
            await make_exchange(s, conversation=await make_conversation(s, user_id=owner))
            await sessions.create(session=s, user_id=owner, lifetime=LIFETIME)
    async with db_scope() as s:
        await accounts.delete_account(session=s, user_id=leaver.id, actor_id=leaver.id)
    async with db_scope() as s:
        for model in (Conversation, Message, AuthSession):
            owners = (await s.exec(select(model.user_id))).all()  # type: ignore[attr-defined]
            assert set(owners) == {admin.id}, model
        trail = (await s.exec(select(AuditEvent.action).where(AuditEvent.user_id == leaver.id))).all()
    assert {"sign_up", "account_deleted"} <= set(trail)


async def test_who_may_delete_whom(db_scope, make_settings) -> None:
    """Users cannot delete others; the last admin cannot delete themselves; an admin can delete a user."""
    settings = make_settings()
    admin, user, other = [await sign_up(db_scope, settings, f"{n}@example.com") for n in ("admin", "user", "other")]
    delete = accounts.delete_account
    await refused(db_scope, "admin_only", call(delete, user_id=other.id, actor_id=user.id))
    await refused(db_scope, "last_admin", call(delete, user_id=admin.id, actor_id=admin.id))
    await refused(db_scope, "reauth_required", call(delete, user_id=other.id, actor_id=admin.id))
    async with db_scope() as s:
        await sessions.create(session=s, user_id=admin.id, lifetime=timedelta(hours=1))
        admin_session = (await s.exec(select(AuthSession.id).where(AuthSession.user_id == admin.id))).one()
        await reauth.mark(session=s, user_id=admin.id, session_id=admin_session, how="test")
    async with db_scope() as s:
        await delete(session=s, user_id=other.id, actor_id=admin.id, actor_session_id=admin_session)
    assert [u.email for u in await all_users(db_scope)] == ["admin@example.com", "user@example.com"]


async def test_export_contains_only_the_users_chats(db_scope) -> None:
    async with db_scope() as s:
        alice = await make_account(s, email="alice@example.com")
        bob = await make_account(s, email="bob@example.com")
        assert alice.id is not None and bob.id is not None
        await make_exchange(s, conversation=await make_conversation(s, user_id=alice.id, title="Alice"), question="a?")
        await make_exchange(s, conversation=await make_conversation(s, user_id=bob.id, title="Bob"), question="b?")
    async with db_scope() as s:
        data = await export.export_data(session=s, user_id=alice.id)
    assert data["user"]["email"] == "alice@example.com"
    assert [c["title"] for c in data["conversations"]] == ["Alice"]
    assert [m["content"] for m in data["conversations"][0]["messages"]] == ["a?", "Hello!"]
    assert "bob" not in repr(data).lower() and "password" not in repr(data)


# --------------------------------------------------------------------------- admin


async def test_admin_functions_refuse_non_admins(db_scope, make_settings) -> None:
    settings = make_settings()
    async with db_scope() as s:
        await make_account(s, email="admin@example.com", role=Role.admin)
        user = await make_account(s, email="user@example.com")
        pending = await make_account(s, email="pending@example.com", role=Role.pending)
    for actor in (user.id, pending.id, 10_000):
        await refused(db_scope, "admin_only", call(accounts.list_users, actor_id=actor))
        await refused(db_scope, "admin_only", call(accounts.set_role, actor_id=actor, user_id=actor, role="admin"))
        policy = call(accounts.set_policy, settings=settings, actor_id=actor, key="require_approval", value=True)
        await refused(db_scope, "admin_only", policy)
    assert {u.email: u.role for u in await all_users(db_scope)}["user@example.com"] == Role.user


async def test_roles_and_the_last_admin(db_scope) -> None:
    """Admins approve and promote; the last admin cannot be demoted, a second one can."""
    async with db_scope() as s:
        admin = await make_account(s, email="admin@example.com", role=Role.admin)
        waiting = await make_account(s, email="waiting@example.com", role=Role.pending)
    set_role = accounts.set_role
    await refused(db_scope, "last_admin", call(set_role, actor_id=admin.id, user_id=admin.id, role="user"))
    await refused(db_scope, "bad_setting", call(set_role, actor_id=admin.id, user_id=waiting.id, role="root"))
    async with db_scope() as s:
        listed = await accounts.list_users(session=s, actor_id=admin.id)
        assert [u.email for u in listed] == ["waiting@example.com", "admin@example.com"]  # pending first
        await sessions.create(session=s, user_id=admin.id, lifetime=timedelta(hours=1))
        admin_session = (await s.exec(select(AuthSession.id).where(AuthSession.user_id == admin.id))).one()
        await reauth.mark(session=s, user_id=admin.id, session_id=admin_session, how="test")
        await set_role(
            session=s, actor_id=admin.id, user_id=waiting.id, role="admin", actor_session_id=admin_session
        )  # promoting needs a recent re-authentication (tests/services/test_groups.py)
        await sessions.create(session=s, user_id=waiting.id, lifetime=timedelta(hours=1))
        second = (await s.exec(select(AuthSession.id).where(AuthSession.user_id == waiting.id))).one()
        await reauth.mark(session=s, user_id=waiting.id, session_id=second, how="test")
    async with db_scope() as s:
        demoted = await set_role(session=s, actor_id=waiting.id, user_id=admin.id, role="user", actor_session_id=second)
    assert demoted.role == Role.user


async def test_policy_switches(db_scope, make_settings) -> None:
    """Admins change sign-in switches, but cannot switch off the only way to sign in."""
    async with db_scope() as s:
        admin = await make_account(s, email="admin@example.com", role=Role.admin)
    bare = make_settings()

    def set_policy(key: str, value: bool, settings=bare):
        return call(accounts.set_policy, settings=settings, actor_id=admin.id, key=key, value=value)

    await refused(db_scope, "last_login_method", set_policy("local_login", False))
    await refused(db_scope, "bad_setting", set_policy("secret_key", True))
    async with db_scope() as s:
        policy = await set_policy("local_signup", False)(s)
    assert (policy.local_login, policy.local_signup, policy.require_approval) == (True, False, False)
    await refused(
        db_scope, "signup_closed", call(accounts.sign_up_local, settings=bare, email="n@x.io", password=PASSWORD)
    )

    provider = {"id": "kc", "issuer": "https://id.example.com", "client_id": "c", "client_secret": "s"}
    with_sso = make_settings(auth_providers=[provider])
    async with db_scope() as s:
        policy = await set_policy("local_login", False, settings=with_sso)(s)
    assert not policy.local_login


@pytest.mark.parametrize("email", ["dev@rubin.local", "Ops@Intranet.Corp.LAN", "x@host.internal"])
async def test_company_addresses_on_internal_domains_are_accepted(email: str) -> None:
    """An IdP or a user with user@corp.local can sign up (the validator's special-use list is too strict)."""
    assert credentials.normalize_email(email) == email.lower()
