"""The bundled engine's chat format: Gemma's turns, and a last assistant message left open to be continued."""

from __future__ import annotations

from llama_cpp import llama_chat_format

from rubin_app.engine_server import CHAT_FORMAT, gemma_prompt

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Name the planets"},
]


def test_a_plain_chat_is_formatted_as_llama_cpps_gemma_format() -> None:
    assert gemma_prompt(CHAT) == llama_chat_format.format_gemma(CHAT).prompt  # type: ignore[arg-type]
    assert gemma_prompt(CHAT).endswith("Name the planets<end_of_turn>\n<start_of_turn>model\n")


def test_a_partial_answer_is_left_open_for_the_model_to_continue() -> None:
    prompt = gemma_prompt([*CHAT, {"role": "assistant", "content": "Mercury, Venus,"}])
    assert prompt.endswith("Name the planets<end_of_turn>\n<start_of_turn>model\nMercury, Venus,")
    assert prompt.count("<start_of_turn>model\n") == 2  # no new turn after the partial answer


def test_the_format_is_registered_under_its_name() -> None:
    handler = llama_chat_format.get_chat_completion_handler(CHAT_FORMAT)  # what `--chat_format` looks up
    assert handler is not None
