"""The bundled engine's server: llama.cpp's OpenAI-compatible server (llama-cpp-python) with a Gemma chat format
that continues a last assistant message instead of starting a new turn after it.

A resumed answer (services/recovery.py) is sent with its partial text as the last assistant message; servers
such as llama.cpp's own and vLLM continue it. llama-cpp-python's `gemma` format closes that turn and opens a new
one, so the model would start over; `gemma-continue` leaves it open. Run as
`python -m rubin_app.engine_server <llama_cpp.server arguments>` (rubin_app/engine.py does).
"""

from __future__ import annotations

from typing import Any

from llama_cpp import llama_chat_format as formats

CHAT_FORMAT = "gemma-continue"
_USER, _MODEL, _END = "<start_of_turn>user\n", "<start_of_turn>model\n", "<end_of_turn>\n"


def gemma_prompt(messages: list[dict[str, Any]]) -> str:
    """Gemma's turns (system messages are not part of Gemma's format and are left out, as llama.cpp does); a last
    assistant message stays open for the model to continue."""
    prompt = ""
    for message in messages:
        role, content = message.get("role"), message.get("content")
        text = content if isinstance(content, str) else ""
        if role in ("user", "assistant") and text:
            prompt += (_USER if role == "user" else _MODEL) + text + _END
    if messages and messages[-1].get("role") == "assistant" and isinstance(messages[-1].get("content"), str):
        return prompt.removesuffix(_END)  # the model goes on from the partial answer
    return prompt + _MODEL


@formats.register_chat_format(CHAT_FORMAT)
def _format(messages: list[dict[str, Any]], **_kwargs: Any) -> formats.ChatFormatterResponse:
    return formats.ChatFormatterResponse(prompt=gemma_prompt(messages), stop=_END)


def main() -> None:
    """llama-cpp-python's server, with the format above registered."""
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
