"""Automatic conversation titles."""

from __future__ import annotations

import logging
import re

from rubin_app.llm.client import LLMClient, LLMError

log = logging.getLogger(__name__)
MAX_WORDS = 8
MAX_CHARS = 60


def title_from_text(text: str) -> str:
    """A short title from the first user message: first words, no markdown."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"[#*_`>\[\]()]+", " ", text)
    words = text.split()
    title = " ".join(words[:MAX_WORDS])
    if len(title) > MAX_CHARS:
        title = title[: MAX_CHARS - 1].rstrip() + "…"
    return title


def clean_model_title(raw: str) -> str:
    """Tidy a model-written title; empty when it is unusable."""
    line = next((ln for ln in raw.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(title|заголовок)\s*:\s*", "", line.strip(), flags=re.I)
    line = line.strip(" \"'«»*#`.")
    if not line or len(line) > 80 or len(line.split()) > 12:
        return ""
    return line


async def generate_title(client: LLMClient, model: str, question: str, answer: str) -> str:
    """Ask the model for a title; fall back to the question's first words."""
    prompt = (
        "Write a title of 2 to 6 words for this conversation, in the language of the question. "
        "Reply with the title only.\n\nQuestion: " + question[:800] + "\n\nAnswer: " + answer[:800]
    )
    try:
        raw = await client.complete(model, [{"role": "user", "content": prompt}], max_tokens=24)
    except LLMError as exc:
        log.info("title generation failed: %s", exc.code)
        raw = ""
    return clean_model_title(raw) or title_from_text(question)
