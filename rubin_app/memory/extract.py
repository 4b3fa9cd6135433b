"""Memory proposals: after an answer, the chat's model is asked for new lasting facts about the user.

The model's reply is read defensively: only a JSON list of short strings counts (a code fence around it and a
few words before it are tolerated); anything else — prose, an echo, a broken list, a refusal — proposes nothing.
At most MAX_FACTS facts, each one line of at most MAX_FACT_CHARS, none already known.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

from rubin_app.llm.client import LLMError
from rubin_app.memory.instructions import memory_enabled
from rubin_app.memory.models import Memory
from rubin_app.memory.service import list_memories, save_proposed
from rubin_app.services import text as text_rules
from rubin_app.services.db import session_scope

log = logging.getLogger(__name__)

MAX_FACTS = 3
MAX_FACT_CHARS = 200
MAX_TURNS = 6
MAX_TURN_CHARS = 1500
MAX_LEAD_CHARS = 60  # words tolerated before the list ("Here are the facts:")
PROMPT = (
    "You keep a short list of lasting facts about the user, to personalise future conversations: their name, "
    "work, location, preferences, goals, and how they like answers. Read the conversation below and list only "
    "NEW facts the user clearly stated about themselves. Do not list facts about anything else, temporary "
    "details, questions, or what the assistant said. Each fact: one short sentence in the user's language.\n"
    "Reply with a JSON array of strings and nothing else; reply with an empty array when there is nothing new.\n"
)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)


class Completer(Protocol):
    """What a proposal needs of a model client (rubin_app.llm.client.LLMClient fits)."""

    async def complete(self, model: str, messages: list[dict[str, str]], *, max_tokens: int = 32) -> str: ...


class TurnLike(Protocol):
    """A message of the conversation (rubin_app.services.context.Turn, a Message row...)."""

    @property
    def role(self) -> object: ...
    @property
    def content(self) -> str: ...


def _role(turn: TurnLike) -> str:
    role = turn.role
    return str(getattr(role, "value", role))


def build_prompt(turns: Sequence[TurnLike], existing: Iterable[str] = ()) -> str:
    """The request text: instructions, what is already known, the newest turns."""
    known = [e for e in existing if e][:50]
    lines = [PROMPT]
    if known:
        lines.append("Already known (do not repeat):\n" + "\n".join(f"- {k}" for k in known) + "\n")
    lines.append("Conversation:")
    for turn in list(turns)[-MAX_TURNS:]:
        if _role(turn) in ("user", "assistant") and turn.content.strip():
            lines.append(f"{_role(turn)}: {turn.content.strip()[:MAX_TURN_CHARS]}")
    return "\n".join(lines)


def _the_list(raw: str) -> object:
    """The JSON value the reply consists of (None when it is not one)."""
    fenced = _FENCE.search(raw)
    body = (fenced.group(1) if fenced else raw).strip()
    start = body.find("[")
    if start < 0 or start > MAX_LEAD_CHARS:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(body[start:])
    except ValueError:
        return None
    return value


def parse_facts(raw: str, existing: Iterable[str] = ()) -> list[str]:
    """The usable new facts in a model's reply (see the module's rules); [] for junk."""
    value = _the_list(raw or "")
    if not isinstance(value, list):
        return []
    seen = {" ".join(e.casefold().split()) for e in existing}
    facts: list[str] = []
    for item in value:
        if not isinstance(item, str) or text_rules.has_unstorable(item):
            continue
        fact = " ".join(w for w in (text_rules.strip_hidden(w) for w in item.split()) if w)
        key = fact.casefold()
        if len(fact) < 3 or len(fact) > MAX_FACT_CHARS or key in seen:
            continue
        seen.add(key)
        facts.append(fact)
        if len(facts) == MAX_FACTS:
            break
    return facts


async def propose_memories(
    *, client: Completer, model: str, turns: Sequence[TurnLike], existing: Iterable[str] = ()
) -> list[str]:
    """New short facts about the user from the conversation's newest turns ([] when none, or on any failure)."""
    existing = list(existing)
    if not any(_role(t) == "user" and t.content.strip() for t in turns):
        return []
    prompt = build_prompt(turns, existing)
    try:
        raw = await client.complete(model, [{"role": "user", "content": prompt}], max_tokens=200)
    except LLMError as exc:
        log.info("memory proposal failed: %s", exc.code)
        return []
    facts = parse_facts(raw, existing)
    log.debug("memory proposal: %d facts", len(facts))
    return facts


async def remember_from_chat(
    *, client: Completer, model: str, user_id: int, turns: Sequence[TurnLike], conversation_id: str | None = None,
    max_items: int = 200,
) -> list[Memory]:  # fmt: skip
    """The step after an answer: unless the user switched memory off, ask the chat's model for new facts and save
    them; the memories added (for the "Memory updated" note and its Undo: `service.delete_memories`)."""
    async with session_scope(read_only=True) as session:
        if not await memory_enabled(session=session, user_id=user_id):
            return []
        existing = [m.text for m in await list_memories(session=session, user_id=user_id)]
    facts = await propose_memories(client=client, model=model, turns=turns, existing=existing)
    if not facts:
        return []
    async with session_scope() as session:
        return await save_proposed(
            session=session, user_id=user_id, facts=facts, conversation_id=conversation_id, max_items=max_items
        )
