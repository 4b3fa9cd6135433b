"""Assistants: a user's own, and those an admin shared with everyone. Every query filters by the acting user.

A user may *use* their own assistants and the shared ones, and *change* only their own (sharing is for admins).
An assistant is named "asst:<slug>" in the model picker and as the API's `model`; the slug is made from the
name at creation, unique per owner, and kept when the assistant is renamed. A user's own assistant wins over a
shared one with the same slug. Nothing here commits: the caller's session scope does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.assistants.io import AssistantSpec
from rubin_app.assistants.models import PREFIX, Assistant
from rubin_app.core.clock import utcnow
from rubin_app.models import Role, User
from rubin_app.services.chats import InputError

MAX_PER_USER = 100
_NOT_SLUG = re.compile(r"[^\w]+", re.UNICODE)


def slugify(name: str) -> str:
    """A slug of a name: lower-case letters and digits of any script, words joined by '-' (at most 48)."""
    slug = _NOT_SLUG.sub("-", name.casefold()).replace("_", "-").strip("-")
    return re.sub("-{2,}", "-", slug)[:48].strip("-") or "assistant"


def starters_of(assistant: Assistant) -> list[str]:
    """The assistant's starter prompts."""
    return [s for s in json.loads(assistant.starters or "[]") if isinstance(s, str)]


def knowledge_of(assistant: Assistant) -> list[int]:
    """The ids of the knowledge bases attached to the assistant (retrieval drops those the user cannot read)."""
    return [i for i in json.loads(assistant.knowledge_ids or "[]") if isinstance(i, int)]


def spec_from(assistant: Assistant) -> AssistantSpec:
    """The assistant's fields (for the edit form and the export)."""
    return AssistantSpec(
        name=assistant.name, description=assistant.description, emoji=assistant.emoji,
        base_model=assistant.base_model, system_prompt=assistant.system_prompt, temperature=assistant.temperature,
        max_tokens=assistant.max_tokens, context_budget=assistant.context_budget, starters=starters_of(assistant),
        knowledge_ids=knowledge_of(assistant),
    )  # fmt: skip


def _apply(assistant: Assistant, spec: AssistantSpec) -> None:
    assistant.name, assistant.description, assistant.emoji = spec.name, spec.description, spec.emoji
    assistant.base_model, assistant.system_prompt = spec.base_model, spec.system_prompt
    assistant.temperature, assistant.max_tokens = spec.temperature, spec.max_tokens
    assistant.context_budget = spec.context_budget
    assistant.starters = json.dumps(spec.starters, ensure_ascii=False)
    assistant.knowledge_ids = json.dumps(spec.knowledge_ids)
    assistant.updated_at = utcnow()


def _readable(user_id: int):  # type: ignore[no-untyped-def]
    return or_(col(Assistant.owner_id) == user_id, col(Assistant.shared).is_(True))


async def list_assistants(*, session: AsyncSession, user_id: int) -> list[Assistant]:
    """The assistants the user may use, by name: their own, then shared ones whose name they do not already use."""
    stmt = select(Assistant).where(_readable(user_id)).order_by(col(Assistant.name), col(Assistant.id))
    rows = list((await session.exec(stmt)).all())
    own = [a for a in rows if a.owner_id == user_id]
    taken = {a.slug for a in own}
    shared: list[Assistant] = []
    for a in rows:
        if a.owner_id != user_id and a.slug not in taken:
            taken.add(a.slug)
            shared.append(a)
    return sorted([*own, *shared], key=lambda a: (a.name.casefold(), a.id or 0))


async def get_assistant(*, session: AsyncSession, user_id: int, assistant_id: int) -> Assistant | None:
    """An assistant the user may use (their own or a shared one), or None."""
    stmt = select(Assistant).where(col(Assistant.id) == assistant_id, _readable(user_id))
    return (await session.exec(stmt)).first()


async def _own(session: AsyncSession, user_id: int, assistant_id: int) -> Assistant:
    stmt = select(Assistant).where(col(Assistant.id) == assistant_id, col(Assistant.owner_id) == user_id)
    assistant = (await session.exec(stmt)).first()
    if assistant is None:
        raise InputError("assistant_not_found")
    return assistant


async def resolve_assistant(*, session: AsyncSession, user_id: int, name: str) -> Assistant | None:
    """The assistant a model name ("asst:<slug>") means for this user (their own first, then a shared one)."""
    if not name.startswith(PREFIX):
        return None
    slug = name.removeprefix(PREFIX)
    stmt = (
        select(Assistant)
        .where(col(Assistant.slug) == slug, _readable(user_id))
        .order_by(col(Assistant.owner_id) != user_id, col(Assistant.id))
    )
    return (await session.exec(stmt)).first()


async def _free_slug(session: AsyncSession, user_id: int, name: str) -> str:
    base = slugify(name)
    taken = set((await session.exec(select(Assistant.slug).where(col(Assistant.owner_id) == user_id))).all())
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


async def create_assistant(*, session: AsyncSession, user_id: int, spec: AssistantSpec) -> Assistant:
    """A new private assistant of the user's."""
    count = len((await session.exec(select(Assistant.id).where(col(Assistant.owner_id) == user_id))).all())
    if count >= MAX_PER_USER:
        raise InputError("too_many_assistants", max=MAX_PER_USER)
    assistant = Assistant(owner_id=user_id, slug=await _free_slug(session, user_id, spec.name), name=spec.name,
                          base_model=spec.base_model)  # fmt: skip
    _apply(assistant, spec)
    session.add(assistant)
    try:
        await session.flush()
    except IntegrityError:  # the same slug taken at the same moment (another tab)
        raise InputError("assistant_busy") from None
    return assistant


async def update_assistant(*, session: AsyncSession, user_id: int, assistant_id: int, spec: AssistantSpec) -> Assistant:
    """Change one of the user's own assistants (its slug, hence its model name, stays)."""
    assistant = await _own(session, user_id, assistant_id)
    _apply(assistant, spec)
    session.add(assistant)
    await session.flush()
    return assistant


async def delete_assistant(*, session: AsyncSession, user_id: int, assistant_id: int) -> None:
    """Delete one of the user's own assistants (chats that used it keep their messages)."""
    await session.delete(await _own(session, user_id, assistant_id))
    await session.flush()


async def set_shared(*, session: AsyncSession, user_id: int, assistant_id: int, shared: bool) -> Assistant:
    """Share one's own assistant with everyone, or stop sharing it (admins only)."""
    user = await session.get(User, user_id)
    if user is None or user.role != Role.admin:
        raise InputError("admin_only")
    assistant = await _own(session, user_id, assistant_id)
    assistant.shared, assistant.updated_at = bool(shared), utcnow()
    session.add(assistant)
    await session.flush()
    return assistant


async def import_assistants(*, session: AsyncSession, user_id: int, specs: list[AssistantSpec]) -> list[Assistant]:
    """Create private assistants from an imported file's entries (all or none: the caller's scope)."""
    if not specs:
        return []
    count = len((await session.exec(select(Assistant.id).where(col(Assistant.owner_id) == user_id))).all())
    if count + len(specs) > MAX_PER_USER:
        raise InputError("too_many_assistants", max=MAX_PER_USER)
    return [await create_assistant(session=session, user_id=user_id, spec=s) for s in specs]


async def model_names(*, session: AsyncSession, user_id: int, allows: Callable[[str], bool]) -> dict[str, list[str]]:
    """The picker's names ("asst:<slug>") of the assistants the user may use whose base model `allows` lets them,
    each with its starter prompts, by name."""
    usable = [a for a in await list_assistants(session=session, user_id=user_id) if allows(a.base_model)]
    return {a.model_name: starters_of(a) for a in usable}
