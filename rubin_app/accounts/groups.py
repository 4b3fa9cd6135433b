"""Groups and permissions: an admin puts users in groups; each group grants models and features.

A user's effective permissions are the union over their groups; a user in no group gets the instance
defaults (an admin's switches, stored in `app_settings`; out of the box everything is allowed, so an upgrade
changes nothing); admins always have every permission. Every change here is audited and admin-only (the
actor's role is checked here, not only in the UI). Nothing here commits: the caller's session scope does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.accounts.group_models import Group, GroupMember
from rubin_app.accounts.permissions import EVERYTHING, Permissions
from rubin_app.core.clock import utcnow
from rubin_app.models import AppSetting, Role, User
from rubin_app.services import audit, text
from rubin_app.services.chats import InputError

DEFAULTS_KEY = "default_permissions"
NAME_MAX = 80
MODEL_MAX = 200
MAX_GROUPS = 200
GROUP_CREATED = "group_created"
GROUP_CHANGED = "group_changed"
GROUP_DELETED = "group_deleted"
MEMBER_ADDED = "group_member_added"
MEMBER_REMOVED = "group_member_removed"
DEFAULTS_CHANGED = "permissions_defaults"


@dataclass(frozen=True)
class GroupView:
    """A group as the admin page and the API show it: its grant and its members (id, email)."""

    id: int
    name: str
    grant: Permissions
    members: list[tuple[int, str]] = field(default_factory=list)


def _grant(models_json: str, *, api_keys: bool, webhooks: bool, knowledge_sharing: bool) -> Permissions:
    models = [m for m in json.loads(models_json or "[]") if isinstance(m, str)]
    return Permissions(
        models=frozenset(models) or None, api_keys=api_keys, webhooks=webhooks, knowledge_sharing=knowledge_sharing
    )


def grant_of(group: Group) -> Permissions:
    """What membership of `group` allows."""
    return _grant(
        group.models, api_keys=group.api_keys, webhooks=group.webhooks, knowledge_sharing=group.knowledge_sharing
    )


def clean_models(models: list[str]) -> list[str]:
    """A validated model allow-list (sorted, no duplicates; empty: every model)."""
    cleaned = sorted({text.strip_hidden(m).strip() for m in models} - {""})
    if any(len(m) > MODEL_MAX for m in cleaned) or len(json.dumps(cleaned)) > 4000:
        raise InputError("bad_group_models")
    return cleaned


def clean_name(name: str) -> str:
    """A group name: one line, visible characters, 1-80 characters."""
    name = " ".join(text.strip_hidden(name).split())
    if not name or len(name) > NAME_MAX:
        raise InputError("bad_group_name", max=NAME_MAX)
    return name


async def _require_admin(session: AsyncSession, actor_id: int) -> None:
    actor = await session.get(User, actor_id)
    if actor is None or actor.role != Role.admin:
        raise InputError("admin_only")


async def _group(session: AsyncSession, group_id: int) -> Group:
    group = await session.get(Group, group_id)
    if group is None:
        raise InputError("group_not_found")
    return group


async def get_defaults(*, session: AsyncSession) -> Permissions:
    """What users in no group may do (the admin's switches; everything when never changed)."""
    row = await session.get(AppSetting, DEFAULTS_KEY)
    if row is None:
        return EVERYTHING
    saved = json.loads(row.value or "{}")
    return _grant(
        json.dumps(saved.get("models", [])), api_keys=bool(saved.get("api_keys", True)),
        webhooks=bool(saved.get("webhooks", True)), knowledge_sharing=bool(saved.get("knowledge_sharing", True)),
    )  # fmt: skip


def _describe(grant: Permissions) -> str:
    models = ",".join(sorted(grant.models)) if grant.models is not None else "*"
    flags = " ".join(f"{k}={getattr(grant, k)}" for k in ("api_keys", "webhooks", "knowledge_sharing"))
    return f"models={models} {flags}"


async def set_defaults(
    *, session: AsyncSession, actor_id: int, models: list[str] | None = None, api_keys: bool | None = None,
    webhooks: bool | None = None, knowledge_sharing: bool | None = None, ip: str = "",
) -> Permissions:  # fmt: skip
    """Change the instance defaults (admins only); unchanged fields keep their value."""
    await _require_admin(session, actor_id)
    now = await get_defaults(session=session)
    value = {
        "models": clean_models(models) if models is not None else sorted(now.models or []),
        "api_keys": now.api_keys if api_keys is None else bool(api_keys),
        "webhooks": now.webhooks if webhooks is None else bool(webhooks),
        "knowledge_sharing": now.knowledge_sharing if knowledge_sharing is None else bool(knowledge_sharing),
    }
    row = await session.get(AppSetting, DEFAULTS_KEY) or AppSetting(key=DEFAULTS_KEY)
    row.value, row.updated_at = json.dumps(value), utcnow()
    if len(row.value) > 2000:
        raise InputError("bad_group_models")
    session.add(row)
    await session.flush()
    grant = await get_defaults(session=session)
    await audit.record(
        session=session, action=DEFAULTS_CHANGED, user_id=actor_id, actor_id=actor_id, ip=ip, detail=_describe(grant)
    )
    return grant


async def list_groups(*, session: AsyncSession, actor_id: int) -> list[GroupView]:
    """Every group by name, with its members (admins only)."""
    await _require_admin(session, actor_id)
    groups = (await session.exec(select(Group).order_by(col(Group.name)))).all()
    stmt = select(GroupMember.group_id, User.id, User.email).join(User, col(User.id) == GroupMember.user_id)
    members: dict[int, list[tuple[int, str]]] = {}
    for group_id, user_id, email in (await session.exec(stmt.order_by(col(User.email)))).all():
        members.setdefault(group_id, []).append((user_id or 0, email or ""))
    return [GroupView(g.id or 0, g.name, grant_of(g), members.get(g.id or 0, [])) for g in groups]


async def create_group(*, session: AsyncSession, actor_id: int, name: str, ip: str = "") -> Group:
    """A new group named `name` (admins only); it allows every model and feature until changed."""
    await _require_admin(session, actor_id)
    name = clean_name(name)
    if (await session.exec(select(Group.id).where(Group.name == name))).first() is not None:
        raise InputError("group_name_taken", name=name)
    if len((await session.exec(select(Group.id))).all()) >= MAX_GROUPS:
        raise InputError("too_many_groups", max=MAX_GROUPS)
    group = Group(name=name)
    session.add(group)
    try:
        await session.flush()
    except IntegrityError:  # the same name created at the same moment elsewhere
        raise InputError("group_name_taken", name=name) from None
    await audit.record(
        session=session, action=GROUP_CREATED, actor_id=actor_id, ip=ip, detail=f"group {group.id} {name!r}"
    )
    return group


async def update_group(
    *, session: AsyncSession, actor_id: int, group_id: int, name: str | None = None, models: list[str] | None = None,
    api_keys: bool | None = None, webhooks: bool | None = None, knowledge_sharing: bool | None = None, ip: str = "",
) -> Group:  # fmt: skip
    """Rename a group or change what it grants (admins only); fields left None are kept."""
    await _require_admin(session, actor_id)
    group = await _group(session, group_id)
    if name is not None and (name := clean_name(name)) != group.name:
        if (await session.exec(select(Group.id).where(Group.name == name))).first() is not None:
            raise InputError("group_name_taken", name=name)
        group.name = name
    if models is not None:
        group.models = json.dumps(clean_models(models))
    for flag, value in (("api_keys", api_keys), ("webhooks", webhooks), ("knowledge_sharing", knowledge_sharing)):
        if value is not None:
            setattr(group, flag, bool(value))
    group.updated_at = utcnow()
    session.add(group)
    await session.flush()
    await audit.record(
        session=session, action=GROUP_CHANGED, actor_id=actor_id, ip=ip,
        detail=f"group {group.id} {group.name!r} {_describe(grant_of(group))}",
    )  # fmt: skip
    return group


async def delete_group(*, session: AsyncSession, actor_id: int, group_id: int, ip: str = "") -> None:
    """Delete a group (its members keep their accounts; with no group left they get the defaults)."""
    await _require_admin(session, actor_id)
    group = await _group(session, group_id)
    await session.exec(delete(GroupMember).where(col(GroupMember.group_id) == group_id))
    await session.delete(group)
    await session.flush()
    await audit.record(
        session=session, action=GROUP_DELETED, actor_id=actor_id, ip=ip, detail=f"group {group_id} {group.name!r}"
    )


async def add_member(*, session: AsyncSession, actor_id: int, group_id: int, user_id: int, ip: str = "") -> None:
    """Put a user in a group (admins only; already a member: nothing changes)."""
    await _require_admin(session, actor_id)
    group = await _group(session, group_id)
    user = await session.get(User, user_id)
    if user is None:
        raise InputError("account_not_found")
    if await session.get(GroupMember, (group_id, user_id)) is not None:
        return
    session.add(GroupMember(group_id=group_id, user_id=user_id))
    await session.flush()
    await audit.record(
        session=session, action=MEMBER_ADDED, user_id=user_id, actor_id=actor_id, email=user.email, ip=ip,
        detail=f"group {group_id} {group.name!r}",
    )  # fmt: skip


async def remove_member(*, session: AsyncSession, actor_id: int, group_id: int, user_id: int, ip: str = "") -> None:
    """Take a user out of a group (admins only; not a member: nothing changes)."""
    await _require_admin(session, actor_id)
    group = await _group(session, group_id)
    member = await session.get(GroupMember, (group_id, user_id))
    if member is None:
        return
    await session.delete(member)
    await session.flush()
    user = await session.get(User, user_id)
    await audit.record(
        session=session, action=MEMBER_REMOVED, user_id=user_id, actor_id=actor_id,
        email=user.email if user else None, ip=ip, detail=f"group {group_id} {group.name!r}",
    )  # fmt: skip


async def effective(*, session: AsyncSession, user_id: int) -> Permissions:
    """What the user may do now: everything for an admin, else the union over their groups, else the defaults."""
    role = (await session.exec(select(User.role).where(col(User.id) == user_id))).first()
    if role == Role.admin:
        return EVERYTHING
    stmt = select(Group).join(GroupMember, col(GroupMember.group_id) == Group.id).where(GroupMember.user_id == user_id)
    groups = (await session.exec(stmt)).all()
    if not groups:
        return await get_defaults(session=session)
    return Permissions.union(grant_of(g) for g in groups)
