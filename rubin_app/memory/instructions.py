"""Custom instructions ("about me", "how Rubin should answer") and the memory switch, one row per user."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.core.clock import utcnow
from rubin_app.memory.models import Personalisation
from rubin_app.services import text
from rubin_app.services.chats import InputError

MAX_CHARS = 1500  # each field (ChatGPT's custom instructions allow 1,500 too)


def clean_instruction(value: str) -> str:
    """An instruction as saved: no NUL or broken characters, controls but newlines removed, trimmed."""
    if text.has_unstorable(value):
        raise InputError("bad_characters")
    value = text.strip_controls(text.join_surrogate_pairs(value)).strip()
    if len(value) > MAX_CHARS:
        raise InputError("instructions_too_long", max=MAX_CHARS)
    return value


async def _row(session: AsyncSession, user_id: int) -> Personalisation | None:
    return await session.get(Personalisation, user_id)


async def get_instructions(*, session: AsyncSession, user_id: int) -> tuple[str, str]:
    """The user's ("about me", "how to answer") instructions ("" when not set)."""
    row = await _row(session, user_id)
    return (row.about, row.style) if row is not None else ("", "")


async def get_personalisation(*, session: AsyncSession, user_id: int) -> tuple[str, str, bool]:
    """The user's instructions and whether memory is on, in one read (what every answer needs)."""
    row = await _row(session, user_id)
    return (row.about, row.style, row.memory_enabled) if row is not None else ("", "", True)


async def set_instructions(*, session: AsyncSession, user_id: int, about: str, style: str) -> tuple[str, str]:
    """Save the user's custom instructions; the saved pair."""
    about, style = clean_instruction(about), clean_instruction(style)
    row = await _row(session, user_id) or Personalisation(user_id=user_id)
    row.about, row.style, row.updated_at = about, style, utcnow()
    session.add(row)
    await session.flush()
    return about, style


async def memory_enabled(*, session: AsyncSession, user_id: int) -> bool:
    """Whether Rubin remembers (proposes and uses memories) for this user: on unless they switched it off."""
    row = await _row(session, user_id)
    return row.memory_enabled if row is not None else True


async def set_memory_enabled(*, session: AsyncSession, user_id: int, enabled: bool) -> None:
    """Switch memory on or off for the user (off: nothing is proposed or used; the list is kept)."""
    row = await _row(session, user_id) or Personalisation(user_id=user_id)
    row.memory_enabled, row.updated_at = bool(enabled), utcnow()
    session.add(row)
    await session.flush()
