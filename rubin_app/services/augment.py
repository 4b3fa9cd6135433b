"""What a chat answer is asked with besides the conversation: the assistant it goes through, the user's
instructions and memories (rubin_app.assistants.chat), and the numbered sources retrieved from the chosen knowledge.

`prepare` runs on the path to the first token (before LocalAI is asked): the question is embedded once for both
memories and retrieval, retrieval is one hybrid query, and what can fail here (the embedding server, a deleted
base) degrades to less context, never to an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from rubin_app.knowledge.citations import Source, numbered, system_block
from rubin_app.llm.types import ChatRequest, Params
from rubin_app.services.context import Turn, build_context
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime

log = logging.getLogger(__name__)

ALL = "all"  # a chat's knowledge choice meaning every base the user can read


@dataclass
class Prepared:
    """The pieces of one answer's request other than the conversation's turns."""

    model: str  # what LocalAI is asked with (an assistant's base model)
    system: str  # the whole system prompt
    params: Params
    budget: int  # tokens of history (an assistant's budget, or the instance's)
    sources: list[Source] = field(default_factory=list)
    memory: bool = True  # propose memories after the answer

    def request(self, turns: list[Turn]) -> ChatRequest:
        """The request: this system prompt, the newest `turns` that fit the budget, these parameters."""
        return ChatRequest.of_turns(self.model, build_context(self.system, turns, self.budget), self.params)


class _QueryMemo:
    """One embedding per text for a whole preparation: memories and retrieval embed the same question."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._memo: dict[tuple[tuple[str, ...], str], list[list[float]] | Exception] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def embed(self, texts: list[str], *, kind: str = "document") -> list[list[float]]:
        key = (tuple(texts), kind)
        if key not in self._memo:
            try:
                self._memo[key] = await self.inner.embed(texts, kind=kind)
            except Exception as exc:  # a failure is remembered too: retrieval does not wait for a dead server again
                self._memo[key] = exc
        got = self._memo[key]
        if isinstance(got, Exception):
            raise got
        return got


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
    from rubin_app.assistants.chat import chat_setup

    embedder = _QueryMemo(rt.embedder) if rt.embedder is not None else None
    # A reader: no write lock on the send path (only a memory's first embedding is written, committed at once).
    async with session_scope(read_only=True) as session:
        setup = await chat_setup(
            session=session, user_id=user_id, model=model, query=question, default_system=rt.settings.system_prompt,
            base_params=rt.chat_params(), default_budget=rt.settings.context_token_budget, embedder=embedder,
            temporary=temporary, memory_budget=rt.settings.memory_token_budget,
        )  # fmt: skip
    kb_ids: list[int] | str = [] if temporary else knowledge  # a temporary chat searches no knowledge
    if setup.knowledge_ids and kb_ids != ALL and not temporary:
        kb_ids = sorted({*kb_ids, *setup.knowledge_ids}) if isinstance(kb_ids, list) else setup.knowledge_ids
    sources: list[Source] = []
    if kb_ids:  # a read-only session: on SQLite the index's own connections never wait for this one's lock
        async with session_scope(read_only=True) as session:
            sources = await _sources(rt, session, user_id, question, kb_ids, embedder)
    system = "\n\n".join(p for p in (setup.system_prompt, system_block(sources, searched=bool(kb_ids))) if p)
    return Prepared(
        model=setup.model, system=system, params=setup.params, budget=setup.budget, sources=sources,
        memory=not temporary,
    )  # fmt: skip


async def _sources(
    rt: Runtime, session: Any, user_id: int, question: str, kb_ids: list[int] | str, embedder: Any
) -> list[Source]:
    """The numbered passages for `question` from the chosen bases (none on failure: the answer goes on)."""
    from rubin_app.knowledge.retrieval import Reranker, retrieve

    settings = rt.settings
    reranker = None
    if settings.knowledge_rerank_model:  # a connection's /v1/rerank orders the fused passages
        client, upstream = rt.router.client_for(settings.knowledge_rerank_model)
        reranker = Reranker(client, upstream)
    try:
        passages = await retrieve(
            session=session, index=rt.knowledge_index, user_id=user_id, query=question,
            kb_ids=None if kb_ids == ALL else list(kb_ids), embedder=embedder, k=settings.knowledge_top_k,
            reranker=reranker, min_score=settings.knowledge_min_relevance,
        )  # fmt: skip
    except Exception:
        log.exception("retrieval failed; answering without sources")
        return []
    return numbered(passages)
