"""What choosing an assistant changes in a request: the model, the system prompt and the parameters.

Pure functions, used by the /v1 API here and by the chat flow (the UI) when it is wired in.
"""

from __future__ import annotations

from rubin_app.assistants.models import Assistant
from rubin_app.llm.types import ChatMessage, ChatRequest, Params


def system_prompt_for(assistant: Assistant | None, default: str) -> str:
    """The assistant's system prompt (it replaces the instance's), or the instance's when it has none."""
    if assistant is not None and assistant.system_prompt.strip():
        return assistant.system_prompt
    return default


def params_for(assistant: Assistant | None, base: Params) -> Params:
    """`base` with the assistant's temperature and max tokens where it sets them."""
    if assistant is None:
        return base
    changes: dict[str, float | int] = {}
    if assistant.temperature is not None:
        changes["temperature"] = assistant.temperature
    if assistant.max_tokens is not None:
        changes["max_tokens"] = assistant.max_tokens
    return base.model_copy(update=changes) if changes else base


def budget_for(assistant: Assistant | None, default: int) -> int:
    """The history's token budget: the assistant's, else `default`."""
    return assistant.context_budget if assistant is not None and assistant.context_budget else default


def apply_to_request(request: ChatRequest, assistant: Assistant, *, extra_system: str = "") -> ChatRequest:
    """An API request to an assistant as the base model sees it: its system prompt first (then `extra_system`, then
    the caller's own system messages), its temperature and max tokens unless the caller set them."""
    system = "\n\n".join(p for p in (assistant.system_prompt.strip(), extra_system.strip()) if p)
    messages = list(request.messages)
    if system:
        messages.insert(0, ChatMessage.model_construct(role="system", content=system))
    given = request.params.model_dump(exclude_none=True)
    defaults = params_for(assistant, Params()).model_dump(exclude_none=True)
    params = request.params.model_copy(update={k: v for k, v in defaults.items() if k not in given})
    return request.model_copy(update={"model": assistant.base_model, "messages": messages, "params": params})
