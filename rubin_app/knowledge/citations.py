"""Numbered sources of an answer: the system text that hands them to the model, and their stored form.

An answer's sources are saved on its message (`Message.annotations`, sealed like the text) before the model is
asked, so a tab, a reload or another device shows the same numbered list the model was given.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

PASSAGE_CHARS = 1200  # at most this much of a passage is shown under an answer (the model gets the whole chunk)
_MARKER = re.compile(r"\[(\d{1,2})\]")

INSTRUCTIONS = (
    "Answer from the numbered sources below, taken from the user's documents. After each sentence that uses a "
    "source, cite it with its number in square brackets, e.g. [1] or [2][3]. If the sources do not contain the "
    "answer, say plainly that the documents do not contain it, then answer from general knowledge only if you "
    "say so. Never invent sources or numbers."
)
NOTHING_FOUND = (
    "The user's documents were searched for this question and nothing relevant was found. If the question is "
    "about their documents, say that the documents do not contain the answer."
)


@dataclass(frozen=True, slots=True)
class Source:
    """One numbered source: where it comes from and the passage itself."""

    n: int
    chunk_id: int
    file_id: int
    kb_id: int
    filename: str
    page: int | None
    heading: str
    text: str

    def label(self) -> str:
        """'report.pdf, p. 3 — Heading' (what the model and the reader see)."""
        where = f", p. {self.page}" if self.page else ""
        section = f" — {self.heading}" if self.heading else ""
        return f"{self.filename}{where}{section}"


def numbered(passages: list[Any]) -> list[Source]:
    """Sources numbered from 1 in the order retrieval ranked the passages."""
    return [
        Source(
            n=i,
            chunk_id=p.chunk_id,
            file_id=p.file_id,
            kb_id=p.kb_id,
            filename=p.filename,
            page=p.page,
            heading=p.heading,
            text=p.text,
        )
        for i, p in enumerate(passages, start=1)
    ]


def system_block(sources: list[Source], *, searched: bool) -> str:
    """The system text that hands the sources to the model ('' when no knowledge was asked)."""
    if not sources:
        return NOTHING_FOUND if searched else ""
    parts = [INSTRUCTIONS, ""]
    for source in sources:
        parts.append(f"[{source.n}] {source.label()}\n{source.text.strip()}\n")
    return "\n".join(parts).rstrip()


def cited(text: str, sources: list[Source]) -> list[int]:
    """The source numbers an answer's text cites, in order of first citation (unknown numbers ignored)."""
    known = {s.n for s in sources}
    seen: list[int] = []
    for match in _MARKER.finditer(text):
        n = int(match.group(1))
        if n in known and n not in seen:
            seen.append(n)
    return seen


def dump(sources: list[Source], memories: list[dict[str, Any]] | None = None) -> str:
    """The message's `annotations` JSON ('' when there is nothing to keep)."""
    if not sources and not memories:
        return ""
    data: dict[str, Any] = {"sources": [asdict(s) for s in sources]}
    if memories:
        data["memories"] = memories
    return json.dumps(data, ensure_ascii=False)


def load(annotations: str) -> tuple[list[Source], list[dict[str, Any]]]:
    """Sources and memory notes from a message's `annotations` (bad or empty JSON: none)."""
    if not annotations:
        return [], []
    try:
        data = json.loads(annotations)
        sources = [Source(**item) for item in data.get("sources", [])]
        memories = [m for m in data.get("memories", []) if isinstance(m, dict)]
    except (ValueError, TypeError, AttributeError):
        return [], []
    return sources, memories
