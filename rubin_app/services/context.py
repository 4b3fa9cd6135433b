"""What history goes to the model: the system prompt plus the newest turns that fit a token budget."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

PER_MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    """Approximate token count: ~4 bytes of UTF-8 per token (Cyrillic counts about double)."""
    return math.ceil(len(text.encode("utf-8")) / 4) + PER_MESSAGE_OVERHEAD


@dataclass(frozen=True, slots=True)
class Turn:
    """A message as the model sees it."""

    role: str
    content: str


def build_context(system_prompt: str, history: Iterable[Turn], budget: int) -> list[dict[str, str]]:
    """Newest turns that fit `budget` tokens after the system prompt; the last turn always goes."""
    turns = [t for t in history if t.content.strip()]
    used = estimate_tokens(system_prompt) if system_prompt else 0
    kept: list[Turn] = []
    for turn in reversed(turns):
        cost = estimate_tokens(turn.content)
        if kept and used + cost > budget:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    # A context should open with a user turn: drop a leading assistant turn cut from its question.
    while len(kept) > 1 and kept[0].role == "assistant":
        kept.pop(0)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.extend({"role": t.role, "content": t.content} for t in kept)
    return messages
