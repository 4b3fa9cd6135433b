"""Text of the quality-set documents and the passage matcher the scorer and the checker share."""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

_NON_WORD = re.compile(r"[\W_]+")
_BLOCK_TAGS = {
    "p", "div", "br", "li", "tr", "td", "th", "dt", "dd", "pre", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "ul", "ol", "dl", "section", "blockquote", "title",
}  # fmt: skip


class _TextParser(HTMLParser):
    """HTML to text: the visible text, a newline at block boundaries, no script/style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(markup: str) -> str:
    """The visible text of an HTML document."""
    parser = _TextParser()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def document_text(path: Path) -> str:
    """The text of one document (HTML converted, anything else read as UTF-8)."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    return html_text(raw) if path.suffix in (".html", ".htm") else raw


def normalise(text: str) -> str:
    """Case, punctuation, quotes and whitespace folded away: 'Don't  "ls"!' -> 'don t ls'."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    return _NON_WORD.sub(" ", folded).strip()


def overlap(passage: str, chunk: str) -> float:
    """Share of the passage's words found as one unbroken run in the chunk (both raw text), 0..1."""
    words = normalise(passage).split()
    if not words:
        return 0.0
    haystack = f" {normalise(chunk)} "
    if f" {' '.join(words)} " in haystack:
        return 1.0
    best = 0
    for start in range(len(words)):
        # grow the run from `start` while it still occurs; runs shorter than the best so far are not tried
        length = best + 1
        while start + length <= len(words) and f" {' '.join(words[start : start + length])} " in haystack:
            best = length
            length += 1
    return best / len(words)


def is_hit(passage: str, chunk: str, *, threshold: float = 0.5) -> bool:
    """A retrieved chunk answers the question: it holds the passage, or at least `threshold` of it unbroken."""
    return overlap(passage, chunk) >= threshold
