"""Admin state: groups of users and what each may do (models, API keys, webhooks, knowledge sharing), and the defaults
for users in no group. Every handler re-checks the role; the service checks it again."""

from __future__ import annotations

import dataclasses

import reflex as rx

from rubin_app.accounts import groups
from rubin_app.accounts.permissions import FEATURES, Permissions
from rubin_app.admin.state import AdminState
from rubin_app.services import accounts
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime

DEFAULTS = 0  # the "group" id of the defaults for users in no group


@dataclasses.dataclass
class Member:
    """A user as a group lists them."""

    id: int = 0
    email: str = ""


@dataclasses.dataclass
class GroupRow:
    """A group (or, with id 0, the defaults) as the admin page shows it."""

    id: int = 0
    name: str = ""
    models: list[str] = dataclasses.field(default_factory=list)  # empty: every model
    api_keys: bool = True
    webhooks: bool = True
    knowledge_sharing: bool = True
    members: list[Member] = dataclasses.field(default_factory=list)


def _row(group_id: int, name: str, grant: Permissions, members: list[tuple[int, str]]) -> GroupRow:
    return GroupRow(
        id=group_id,
        name=name,
        models=sorted(grant.models or []),
        api_keys=grant.api_keys,
        webhooks=grant.webhooks,
        knowledge_sharing=grant.knowledge_sharing,
        members=[Member(id=i, email=e) for i, e in members],
    )


class GroupsState(AdminState):
    """Groups, their members and permissions, and the defaults."""

    group_rows: list[GroupRow] = []
    defaults: GroupRow = GroupRow()
    model_choices: list[str] = []
    user_choices: list[Member] = []
    groups_error: str = ""

    @rx.event
    async def load_groups(self) -> None:
        """Groups, defaults, the models to pick from and the users to add (admins only)."""
        principal = await self._require(admin=True)
        rt = get_runtime()
        async with session_scope(read_only=True) as session:
            views = await groups.list_groups(session=session, actor_id=principal.user_id)
            defaults = await groups.get_defaults(session=session)
            users = await accounts.list_users(session=session, actor_id=principal.user_id)
        self.group_rows = [_row(v.id, v.name, v.grant, v.members) for v in views]
        self.defaults = _row(DEFAULTS, "", defaults, [])
        listed = {m for row in [*self.group_rows, self.defaults] for m in row.models}
        self.model_choices = sorted(set(await rt.router.get()) | listed)
        self.user_choices = [Member(id=u.id or 0, email=u.email or "") for u in users if u.role != "admin"]

    async def _change(self, action) -> None:
        principal = await self._require(admin=True)
        try:
            async with session_scope() as session:
                await action(session, principal.user_id)
        except (InputError, ValueError) as exc:
            code = exc.code if isinstance(exc, InputError) else "bad_setting"
            self.groups_error = self._t(f"err_{code}", **(exc.params if isinstance(exc, InputError) else {}))
        else:
            self.groups_error = ""
            await get_runtime().permissions.changed()  # every worker forgets its copies
        await self.load_groups()
        await self._reload(principal.user_id)  # the audit log shows the change

    @rx.event
    async def create_group(self, form: dict) -> None:
        """A new group (allowing everything until changed)."""

        async def action(session, actor_id: int) -> None:
            name = str(form.get("name", ""))
            await groups.create_group(session=session, actor_id=actor_id, name=name, ip=self._client_ip())

        await self._change(action)

    @rx.event
    async def rename_group(self, form: dict) -> None:
        """Rename a group (the form carries its id)."""

        async def action(session, actor_id: int) -> None:
            await groups.update_group(
                session=session,
                actor_id=actor_id,
                group_id=int(form.get("group_id", 0)),
                name=str(form.get("name", "")),
                ip=self._client_ip(),
            )

        await self._change(action)

    @rx.event
    async def delete_group(self, group_id: int) -> None:
        """Delete a group (its members fall back to their other groups, or the defaults)."""

        async def action(session, actor_id: int) -> None:
            await groups.delete_group(session=session, actor_id=actor_id, group_id=int(group_id), ip=self._client_ip())

        await self._change(action)

    @rx.event
    async def set_flag(self, group_id: int, flag: str, on: bool) -> None:
        """Switch a feature of a group (or of the defaults, id 0)."""
        if flag not in FEATURES:
            return
        await self._update(int(group_id), **{flag: bool(on)})

    @rx.event
    async def set_model(self, group_id: int, model: str, on: bool) -> None:
        """Tick or untick a model in a group's allow-list (none ticked: every model)."""
        current = (
            self.defaults
            if int(group_id) == DEFAULTS
            else next((g for g in self.group_rows if g.id == int(group_id)), None)
        )
        if current is None:
            return
        models = (set(current.models) | {model}) if on else (set(current.models) - {model})
        await self._update(int(group_id), models=sorted(models))

    async def _update(self, group_id: int, **changes) -> None:
        async def action(session, actor_id: int) -> None:
            if group_id == DEFAULTS:
                await groups.set_defaults(session=session, actor_id=actor_id, ip=self._client_ip(), **changes)
            else:
                await groups.update_group(
                    session=session, actor_id=actor_id, group_id=group_id, ip=self._client_ip(), **changes
                )

        await self._change(action)

    @rx.event
    async def add_member(self, group_id: int, user_id: str) -> None:
        """Put a user in a group."""

        async def action(session, actor_id: int) -> None:
            await groups.add_member(
                session=session, actor_id=actor_id, group_id=int(group_id), user_id=int(user_id), ip=self._client_ip()
            )

        await self._change(action)

    @rx.event
    async def remove_member(self, group_id: int, user_id: int) -> None:
        """Take a user out of a group."""

        async def action(session, actor_id: int) -> None:
            await groups.remove_member(
                session=session, actor_id=actor_id, group_id=int(group_id), user_id=int(user_id), ip=self._client_ip()
            )

        await self._change(action)
