"""Everything personal a chat answer needs, in one call for the chat flow: the assistant the picked model names
(if any), the system prompt (the assistant's or the instance's, then the user's instructions and relevant
memories), the parameters, the history budget and the assistant's knowledge bases."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.assistants.apply import budget_for, params_for, system_prompt_for
from rubin_app.assistants.models import PREFIX, Assistant
from rubin_app.assistants.service import knowledge_of, resolve_assistant
from rubin_app.llm.types import Params
from rubin_app.memory.context import system_context
from rubin_app.memory.service import Embedder
from rubin_app.services.chats import InputError


@dataclass(frozen=True)
class ChatSetup:
    """How to ask: `model` is the model to send to (an assistant's base model), `system_prompt` is whole."""

    model: str
    system_prompt: str
    params: Params
    budget: int
    assistant: Assistant | None = None
    knowledge_ids: list[int] = field(default_factory=list)


async def chat_setup(
    *, session: AsyncSession, user_id: int, model: str, query: str, default_system: str, base_params: Params,
    default_budget: int, embedder: Embedder | None = None, temporary: bool = False, memory_budget: int = 400,
) -> ChatSetup:  # fmt: skip
    """The setup of an answer to `query` with the picked `model` ("asst:<slug>" or a model name).

    An assistant the user may not use (deleted, never theirs) is `unknown_model`. Pass a writable session when an
    embedder is given (memories' missing embeddings are saved)."""
    assistant = None
    if model.startswith(PREFIX):
        assistant = await resolve_assistant(session=session, user_id=user_id, name=model)
        if assistant is None:
            raise InputError("unknown_model", model=model)
    personal = await system_context(
        session=session, user_id=user_id, query=query, embedder=embedder, temporary=temporary,
        budget_tokens=memory_budget,
    )  # fmt: skip
    system = "\n\n".join(p for p in (system_prompt_for(assistant, default_system).strip(), personal) if p)
    return ChatSetup(
        model=assistant.base_model if assistant else model, system_prompt=system,
        params=params_for(assistant, base_params), budget=budget_for(assistant, default_budget),
        assistant=assistant, knowledge_ids=knowledge_of(assistant) if assistant else [],
    )  # fmt: skip
