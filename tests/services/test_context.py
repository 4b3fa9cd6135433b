"""What history goes to the model: system prompt first, newest turns within the token budget."""

from __future__ import annotations

from rubin_app.services.context import PER_MESSAGE_OVERHEAD, Turn, build_context, estimate_tokens

SYSTEM = "You are Rubin."


def conversation(n_exchanges: int, size: int = 200) -> list[Turn]:
    """Alternating user/assistant turns, each about `size` characters, numbered so they can be told apart."""
    turns: list[Turn] = []
    for i in range(n_exchanges):
        turns.append(Turn("user", f"question {i} " + "q" * size))
        turns.append(Turn("assistant", f"answer {i} " + "a" * size))
    return turns


def cost(messages: list[dict[str, str]]) -> int:
    return sum(estimate_tokens(m["content"]) for m in messages)


def test_short_history_goes_whole_after_the_system_prompt() -> None:
    history = conversation(3, size=10)
    messages = build_context(SYSTEM, history, budget=3000)
    assert messages[0] == {"role": "system", "content": SYSTEM}
    assert messages[1:] == [{"role": t.role, "content": t.content} for t in history]


def test_long_history_keeps_the_newest_turns_within_budget() -> None:
    history = conversation(40)
    budget = 500
    messages = build_context(SYSTEM, history, budget)

    assert messages[0]["role"] == "system"
    assert cost(messages) <= budget
    kept = messages[1:]
    # the newest turns, in order, ending with the last one
    assert kept == [{"role": t.role, "content": t.content} for t in history[-len(kept) :]]
    assert len(kept) < len(history)
    # and as many as fit: one more older turn would have exceeded the budget
    older = history[-len(kept) - 1]
    assert cost(messages) + estimate_tokens(older.content) > budget or older.role == "assistant"


def test_context_opens_with_a_user_turn() -> None:
    history = [*conversation(40), Turn("user", "and now?")]
    for budget in range(100, 1200, 37):
        kept = build_context(SYSTEM, history, budget)[1:]
        assert kept[0]["role"] == "user", budget


def test_leading_assistant_turn_is_dropped() -> None:
    # Budget that fits exactly the last user turn and the assistant answer before it.
    history = [
        Turn("user", "first question " + "x" * 400),
        Turn("assistant", "first answer"),
        Turn("user", "second question"),
    ]
    budget = estimate_tokens(SYSTEM) + estimate_tokens("first answer") + estimate_tokens("second question")
    messages = build_context(SYSTEM, history, budget)
    assert messages == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "second question"},
    ]


def test_last_turn_is_kept_even_when_it_alone_exceeds_the_budget() -> None:
    huge = "word " * 5000
    history = [*conversation(2), Turn("user", huge)]
    messages = build_context(SYSTEM, history, budget=100)
    assert messages == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": huge}]


def test_empty_turns_are_left_out() -> None:
    history = [Turn("user", "hi"), Turn("assistant", "   "), Turn("user", "anyone?")]
    messages = build_context(SYSTEM, history, budget=3000)
    assert [m["content"] for m in messages] == [SYSTEM, "hi", "anyone?"]


def test_no_system_prompt_means_no_system_message() -> None:
    messages = build_context("", [Turn("user", "hi")], budget=3000)
    assert messages == [{"role": "user", "content": "hi"}]


def test_russian_text_costs_more_tokens_than_ascii_of_the_same_length() -> None:
    russian = "Привет, как дела? Расскажи про рубины и сапфиры."
    ascii_text = "x" * len(russian)
    assert estimate_tokens(russian) > estimate_tokens(ascii_text)
    assert estimate_tokens(russian) - PER_MESSAGE_OVERHEAD >= 1.7 * (estimate_tokens(ascii_text) - PER_MESSAGE_OVERHEAD)


def test_russian_history_keeps_fewer_turns_for_the_same_budget() -> None:
    size = 150
    english = [Turn("user" if i % 2 == 0 else "assistant", "e" * size) for i in range(30)]
    russian = [Turn("user" if i % 2 == 0 else "assistant", "ж" * size) for i in range(30)]
    budget = 1000
    kept_en = build_context(SYSTEM, english, budget)
    kept_ru = build_context(SYSTEM, russian, budget)
    assert cost(kept_ru) <= budget
    assert len(kept_ru) < len(kept_en)
