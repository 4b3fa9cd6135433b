"""Groups and permissions (issue #13) on SQLite and PostgreSQL: the union over a user's groups, the instance
defaults for users in no group, admins allowed everything, and the refusals every door meets (models, API keys,
webhooks) — plus the cache that every worker drops when permissions change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import col, select

from rubin_app.accounts import api_keys, groups
from rubin_app.accounts.group_models import GroupMember
from rubin_app.accounts.permissions import EVERYTHING, Permissions
from rubin_app.models import AuditEvent, Role
from rubin_app.services import accounts, chat_flow
from rubin_app.services.chats import InputError
from rubin_app.services.runtime import Runtime
from rubin_app.webhooks import service as webhooks
from rubin_app.webhooks.errors import WebhooksNotAllowed
from rubin_app.webhooks.schemas import EndpointCreate
from tests.factories import make_account

RuntimeFactory = Callable[..., Any]


async def _people(db_scope: Callable[[], Any]) -> tuple[int, int, int]:
    """An admin, and two users: (admin, ann, bob)."""
    async with db_scope() as s:
        admin = await make_account(s, email="admin@example.com", role=Role.admin)
        ann = await make_account(s, email="ann@example.com")
        bob = await make_account(s, email="bob@example.com")
    assert admin.id and ann.id and bob.id
    return admin.id, ann.id, bob.id


async def _effective(db_scope: Callable[[], Any], user_id: int) -> Permissions:
    async with db_scope() as s:
        return await groups.effective(session=s, user_id=user_id)


async def test_users_in_no_group_get_the_defaults_which_allow_everything_until_changed(db_scope) -> None:
    admin, ann, _ = await _people(db_scope)
    assert await _effective(db_scope, ann) == EVERYTHING  # an upgrade changes nothing
    async with db_scope() as s:
        await groups.set_defaults(session=s, actor_id=admin, models=["standin-small"], api_keys=False)
    assert await _effective(db_scope, ann) == Permissions(
        models=frozenset({"standin-small"}), api_keys=False, webhooks=True, knowledge_sharing=True
    )
    async with db_scope() as s:  # unchanged fields keep their value
        await groups.set_defaults(session=s, actor_id=admin, webhooks=False)
    after = await _effective(db_scope, ann)
    assert (after.models, after.api_keys, after.webhooks) == (frozenset({"standin-small"}), False, False)


async def test_permissions_are_the_union_over_the_users_groups(db_scope) -> None:
    admin, ann, bob = await _people(db_scope)
    async with db_scope() as s:
        a = await groups.create_group(session=s, actor_id=admin, name="  Interns ")
        b = await groups.create_group(session=s, actor_id=admin, name="Writers")
        assert a.name == "Interns" and a.id and b.id
        await groups.update_group(session=s, actor_id=admin, group_id=a.id, models=["standin-small"], api_keys=False)
        await groups.update_group(
            session=s, actor_id=admin, group_id=b.id, models=["standin-model"], webhooks=False,
            knowledge_sharing=False,
        )  # fmt: skip
        await groups.set_defaults(session=s, actor_id=admin, api_keys=False, webhooks=False)
        await groups.add_member(session=s, actor_id=admin, group_id=a.id, user_id=ann)
        await groups.add_member(session=s, actor_id=admin, group_id=a.id, user_id=ann)  # twice: still one
    only_a = await _effective(db_scope, ann)
    assert only_a == Permissions(frozenset({"standin-small"}), api_keys=False, webhooks=True, knowledge_sharing=True)
    assert only_a.filter(["standin-model", "standin-small"]) == ["standin-small"]
    async with db_scope() as s:
        await groups.add_member(session=s, actor_id=admin, group_id=b.id, user_id=ann)
    both = await _effective(db_scope, ann)  # keys from Writers, webhooks and knowledge from Interns
    assert both == Permissions(frozenset({"standin-small", "standin-model"}), True, True, True)
    assert await _effective(db_scope, bob) == Permissions(None, api_keys=False, webhooks=False)  # the defaults
    async with db_scope() as s:  # a group with no model ticked allows every model, for the union too
        await groups.update_group(session=s, actor_id=admin, group_id=b.id, models=[])
    assert (await _effective(db_scope, ann)).models is None
    async with db_scope() as s:  # the group goes: its members fall back to what is left
        await groups.delete_group(session=s, actor_id=admin, group_id=a.id)
        await groups.remove_member(session=s, actor_id=admin, group_id=b.id, user_id=ann)
        views = await groups.list_groups(session=s, actor_id=admin)
    assert [(v.name, v.members) for v in views] == [("Writers", [])]
    assert await _effective(db_scope, ann) == Permissions(None, api_keys=False, webhooks=False)


async def test_admins_have_every_permission_whatever_their_groups(db_scope) -> None:
    admin, _, _ = await _people(db_scope)
    async with db_scope() as s:
        group = await groups.create_group(session=s, actor_id=admin, name="Locked")
        assert group.id
        await groups.update_group(
            session=s, actor_id=admin, group_id=group.id, models=["standin-small"], api_keys=False, webhooks=False
        )
        await groups.add_member(session=s, actor_id=admin, group_id=group.id, user_id=admin)
        await groups.set_defaults(session=s, actor_id=admin, models=["x"], api_keys=False)
    assert await _effective(db_scope, admin) == EVERYTHING


async def test_only_admins_change_groups_bad_input_is_refused_and_changes_are_audited(db_scope) -> None:
    admin, ann, _ = await _people(db_scope)
    for action in (
        lambda s: groups.create_group(session=s, actor_id=ann, name="Mine"),
        lambda s: groups.set_defaults(session=s, actor_id=ann, api_keys=True),
        lambda s: groups.list_groups(session=s, actor_id=ann),
    ):
        with pytest.raises(InputError) as info:
            async with db_scope() as s:
                await action(s)
        assert info.value.code == "admin_only"
    async with db_scope() as s:
        group = await groups.create_group(session=s, actor_id=admin, name="Team")
    for name, code in (("", "bad_group_name"), ("\u200b \x00", "bad_group_name"), ("x" * 81, "bad_group_name"),
                       ("Team", "group_name_taken")):  # fmt: skip
        with pytest.raises(InputError) as info:
            async with db_scope() as s:
                await groups.create_group(session=s, actor_id=admin, name=name)
        assert info.value.code == code
    for bad in (
        lambda s: groups.update_group(session=s, actor_id=admin, group_id=group.id, models=["m" * 201]),
        lambda s: groups.update_group(session=s, actor_id=admin, group_id=9999, name="Gone"),
        lambda s: groups.add_member(session=s, actor_id=admin, group_id=group.id, user_id=9999),
    ):
        with pytest.raises(InputError) as info:
            async with db_scope() as s:
                await bad(s)
        assert info.value.code in ("bad_group_models", "group_not_found", "account_not_found")
    async with db_scope() as s:
        assert [v.name for v in await groups.list_groups(session=s, actor_id=admin)] == ["Team"]  # nothing lost
        await groups.add_member(session=s, actor_id=admin, group_id=group.id, user_id=ann)
        await groups.update_group(session=s, actor_id=admin, group_id=group.id, name="Crew", api_keys=False)
        rows = (await s.exec(select(AuditEvent).order_by(col(AuditEvent.id)))).all()
    actions = [(e.action, e.actor_id) for e in rows]
    assert ("group_created", admin) in actions and ("group_member_added", admin) in actions
    changed = [e.detail for e in rows if e.action == "group_changed"]
    assert changed and "'Crew'" in changed[-1] and "api_keys=False" in changed[-1]


async def test_a_disallowed_model_or_feature_is_refused_in_the_service_layer(
    runtime: Runtime, db_scope, make_settings
) -> None:
    admin, ann, bob = await _people(db_scope)
    async with db_scope() as s:
        group = await groups.create_group(session=s, actor_id=admin, name="Small only")
        assert group.id
        await groups.update_group(
            session=s, actor_id=admin, group_id=group.id, models=["standin-small"], api_keys=False, webhooks=False
        )
        await groups.add_member(session=s, actor_id=admin, group_id=group.id, user_id=ann)
        _, bobs_key = await api_keys.create_key(session=s, user_id=bob, name="bob's")
    rt = runtime
    assert await rt.catalog.allowed(await rt.permissions.get(ann)) == ["standin-small"]
    assert await rt.catalog.allowed(await rt.permissions.get(bob)) == ["standin-model", "standin-small"]
    with pytest.raises(InputError) as info:
        await chat_flow.send_message(rt, user_id=ann, conversation_id=None, text="hi", model="standin-model")
    assert (info.value.code, info.value.params) == ("model_not_allowed", {"model": "standin-model"})
    assert await chat_flow.check_model(rt, "", user_id=ann) == "standin-small"  # the default she may use
    started = await chat_flow.send_message(rt, user_id=ann, conversation_id=None, text="hi", model="standin-small")
    await started.run.wait_done()
    assert started.run.text
    with pytest.raises(InputError) as info:
        async with db_scope() as s:
            await api_keys.create_key(session=s, user_id=ann, name="mine")
    assert info.value.code == "api_keys_not_allowed"
    settings = make_settings(webhook_allow_private=True)
    data = EndpointCreate(url="http://127.0.0.1:9/hook", events=["*"])
    with pytest.raises(WebhooksNotAllowed):
        async with db_scope() as s:
            await webhooks.create_endpoint(
                s, actor=webhooks.Actor(user_id=ann), settings=settings, secret_key="k" * 32, data=data
            )
    async with db_scope() as s:  # bob is in no group: the defaults (everything) — until bob joins the group
        assert (await api_keys.resolve_key(session=s, key=bobs_key))[1] == ""
        await groups.add_member(session=s, actor_id=admin, group_id=group.id, user_id=bob)
    async with db_scope() as s:  # his existing key stops working
        assert await api_keys.resolve_key(session=s, key=bobs_key) == (None, "api_keys_not_allowed")


async def test_a_change_reaches_the_cache_of_every_worker_at_once(make_redis_runtime: RuntimeFactory, db_scope) -> None:
    admin, ann, _ = await _people(db_scope)
    async with db_scope() as s:
        _, key = await api_keys.create_key(session=s, user_id=ann, name="ann's")
    first, second = await make_redis_runtime(), await make_redis_runtime()
    await first.bus.ensure_listening()
    await second.bus.ensure_listening()
    assert (await first.permissions.get(ann)).allows_model("standin-model")  # cached for 10 s
    assert (await first.keys.resolve(key))[0] is not None  # cached for 5 s
    async with db_scope() as s:
        group = await groups.create_group(session=s, actor_id=admin, name="No keys")
        assert group.id
        await groups.update_group(
            session=s, actor_id=admin, group_id=group.id, models=["standin-small"], api_keys=False
        )
        await groups.add_member(session=s, actor_id=admin, group_id=group.id, user_id=ann)
    assert (await first.permissions.get(ann)).allows_model("standin-model")  # stale: nobody told it yet
    await second.permissions.changed()  # the admin's worker, after the commit
    for _ in range(100):
        if not (await first.permissions.get(ann)).allows_model("standin-model"):
            break
        await __import__("asyncio").sleep(0.02)
    assert not (await first.permissions.get(ann)).allows_model("standin-model")
    assert await first.keys.resolve(key) == (None, "api_keys_not_allowed")


async def test_a_deleted_user_leaves_their_groups(db_scope) -> None:
    admin, ann, _ = await _people(db_scope)
    async with db_scope() as s:
        group = await groups.create_group(session=s, actor_id=admin, name="Leavers")
        assert group.id
        await groups.add_member(session=s, actor_id=admin, group_id=group.id, user_id=ann)
    async with db_scope() as s:
        await accounts.delete_account(session=s, user_id=ann, actor_id=ann)
    async with db_scope() as s:
        assert [v.members for v in await groups.list_groups(session=s, actor_id=admin)] == [[]]
        assert (await s.exec(select(GroupMember))).all() == []
