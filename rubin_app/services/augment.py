"""What a chat answer is asked with besides the conversation: the assistant it goes through, the user's
instructions and memories, and the numbered sources retrieved from the chosen knowledge.

`prepare` runs on the path to the first token (before LocalAI is asked): retrieval is one hybrid query, and
everything that can fail here (the embedding server, a deleted base) degrades to less context, never to an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from rubin_app.knowledge.citations import Source, numbered, system_block
from rubin_app.llm.types import Params
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime

log = logging.getLogger(__name__)

ALL = "all"  # a chat's knowledge choice meaning every base the user can read


@dataclass
class Prepared:
    """The pieces of one answer's request other than the conversation's turns."""

    model: str  # what LocalAI is asked with (an assistant's base model)
    system: str  # the whole system prompt
    params: dict[str, Any] = field(default_factory=dict)  # an assistant's sampling parameters
    budget: int | None = None  # an assistant's context budget
    sources: list[Source] = field(default_factory=list)
    memory: bool = True  # propose memories after the answer


def parse_knowledge(value: str | list[int] | None) -> list[int] | str:
    """A chat's stored knowledge choice: a list of base ids, or ALL ('' or junk: none)."""
    if isinstance(value, list):
        return [int(v) for v in value if isinstance(v, int) and not isinstance(v, bool)]
    if not value:
        return []
    try:
        data = json.loads(value)
    except ValueError:
        return []
    if data == ALL:
        return ALL
    return [v for v in data if isinstance(v, int) and not isinstance(v, bool)] if isinstance(data, list) else []


def dump_knowledge(choice: list[int] | str) -> str:
    """The stored form of a knowledge choice ('' for none)."""
    return json.dumps(choice) if choice else ""


async def prepare(
    rt: Runtime, *, user_id: int, model: str, question: str, knowledge: list[int] | str, temporary: bool = False
) -> Prepared:
    """Resolve the assistant, then gather instructions, memories and sources for `question`."""
    from rubin_app.assistants.service import resolve_assistant
    from rubin_app.memory.service import system_context

    async with session_scope(read_only=True) as session:
        assistant = await resolve_assistant(session=session, user_id=user_id, name=model)
        prepared = Prepared(model=model, system=rt.settings.system_prompt)
        kb_ids: list[int] | str = knowledge
        if assistant is not None:
            prepared.model = assistant.base_model
            prepared.params = {
                k: v for k, v in (("temperature", assistant.temperature), ("max_tokens", assistant.max_tokens)) if v
            }
            prepared.budget = assistant.context_budget or None
            own = _assistant_knowledge(assistant)
            if own and kb_ids != ALL:
                kb_ids = sorted({*kb_ids, *own}) if isinstance(kb_ids, list) else own
        personal = await system_context(
            session=session, user_id=user_id, query=question, embedder=rt.embedder, temporary=temporary
        )
        searched = bool(kb_ids)
        if searched:
            prepared.sources = await _sources(rt, session, user_id, question, kb_ids)
    parts = [prepared.system, assistant.system_prompt if assistant is not None else "", personal]
    parts.append(system_block(prepared.sources, searched=searched))
    prepared.system = "\n\n".join(p.strip() for p in parts if p and p.strip())
    prepared.memory = not temporary
    return prepared


def _assistant_knowledge(assistant: Any) -> list[int]:
    raw = assistant.knowledge_ids
    ids = json.loads(raw) if isinstance(raw, str) and raw else raw or []
    return [int(i) for i in ids if isinstance(i, int)]


async def _sources(rt: Runtime, session: Any, user_id: int, question: str, kb_ids: list[int] | str) -> list[Source]:
    """The numbered passages for `question` from the chosen bases (none on failure: the answer goes on)."""
    from rubin_app.knowledge.retrieval import retrieve

    try:
        passages = await retrieve(
            session=session, index=rt.knowledge_index, user_id=user_id, query=question,
            kb_ids=None if kb_ids == ALL else list(kb_ids), embedder=rt.embedder, k=rt.settings.knowledge_top_k,
        )  # fmt: skip
    except Exception:
        log.exception("retrieval failed; answering without sources")
        return []
    return numbered(passages)


def params_of(prepared: Prepared, base: Params) -> Params:
    """The settings' parameters with an assistant's on top."""
    return base.model_copy(update=prepared.params) if prepared.params else base
