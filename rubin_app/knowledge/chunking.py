"""Passages for the index: a document's sections cut by structure (sections, paragraphs, lines, sentences,
words; never inside a word), small neighbours merged, with an overlap between neighbours inside a section.

Every chunk is an exact slice of `Extracted.text` (`text == extracted.text[start:end]`), so a citation can
highlight it in the document; it keeps the page and the heading path of where it starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

from rubin_app.knowledge.documents import HEADING_SEPARATOR, SECTION_SEPARATOR, Extracted
from rubin_app.services.context import PER_MESSAGE_OVERHEAD, estimate_tokens

BYTES_PER_TOKEN = 4  # the estimate of rubin_app.services.context.estimate_tokens
# Ways to cut a piece that is too long, coarsest first; the last resort (one "word" longer than a chunk) is bytes.
PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
LINE = re.compile(r"\n\s*")
SENTENCE = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'»”’)\]]))\s+")
WORD = re.compile(r"\S+")
LINES_FIRST = (LINE, SENTENCE)
SENTENCES_FIRST = (SENTENCE, LINE)
PROSE_KINDS = {"pdf", "docx", "pptx", "markdown", "html", "text"}
SENTENCE_START = re.compile(r"(?:[.!?…][\"'»”’)\]]?|\n)\s+(?=\S)")
MERGE_BELOW = 0.5  # a chunk under half the target takes in the whole next section if it fits
TINY = 0.125  # a chunk under an eighth of the target (a lone heading) runs on into the next section


@dataclass(slots=True)
class Chunk:
    """One passage: `text == Extracted.text[start:end]`; `tokens` as estimate_tokens counts them."""

    ordinal: int
    text: str
    page: int | None
    heading: str
    start: int
    end: int
    tokens: int

    @property
    def indexed_text(self) -> str:
        """What to embed and index: the heading path, then the text (the heading gives a passage its topic)."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


class _Unit(NamedTuple):
    start: int
    end: int
    section: int
    size: int  # UTF-8 bytes


def chunk(extracted: Extracted, *, target_tokens: int = 350, overlap_tokens: int = 50) -> list[Chunk]:
    """The document's passages in reading order, each about `target_tokens` long at most (overlap included)."""
    if target_tokens < 8:
        raise ValueError("target_tokens must be at least 8")
    budget = (target_tokens - PER_MESSAGE_OVERHEAD) * BYTES_PER_TOKEN
    overlap = max(0, min(overlap_tokens, (target_tokens - PER_MESSAGE_OVERHEAD) // 2)) * BYTES_PER_TOKEN
    text = extracted.text
    prose = extracted.kind in PROSE_KINDS
    bounds = _section_bounds(extracted)
    units = [u for n, (a, b) in enumerate(bounds) for u in _units(text, a, b, n, budget - overlap, prose=prose)]
    spans = _Packer(extracted, units, budget, overlap).spans()
    chunks = []
    for ordinal, (start, end, first, last) in enumerate(spans):
        body = text[start:end]
        chunks.append(
            Chunk(
                ordinal=ordinal,
                text=body,
                page=extracted.sections[first].page,
                heading=_heading(extracted, first, last),
                start=start,
                end=end,
                tokens=estimate_tokens(body),
            )
        )
    return chunks


def _section_bounds(extracted: Extracted) -> list[tuple[int, int]]:
    bounds, offset = [], 0
    for section in extracted.sections:
        bounds.append((offset, offset + len(section.text)))
        offset += len(section.text) + len(SECTION_SEPARATOR)
    return bounds


def _units(text: str, a: int, b: int, section: int, limit: int, *, prose: bool) -> list[_Unit]:
    """The section cut into pieces of at most `limit` bytes, at the coarsest boundaries that do it: paragraphs,
    then (prose) sentences before lines, whose breaks in a PDF or wrapped text fall anywhere, or (tables, code)
    lines before sentences."""
    out: list[_Unit] = []
    for p_start, p_end in _split(text, a, b, PARAGRAPH):
        levels = SENTENCES_FIRST if prose and _wrapped(text[p_start:p_end]) else LINES_FIRST
        for start, end in _cut(text, p_start, p_end, limit, levels):
            out.append(_Unit(start, end, section, len(text[start:end].encode())))
    return out


def _wrapped(paragraph: str) -> bool:
    """Whether a paragraph's line breaks are a layout's, not rows of a table or lines of code."""
    lines = paragraph.split("\n")
    tabular = sum(" | " in line or ("; " in line and ": " in line) for line in lines)
    code = sum(line.startswith(("    ", "\t")) for line in lines)
    return tabular < len(lines) / 2 and code < len(lines) / 3


def _split(text: str, a: int, b: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    spans, start = [], a
    for match in pattern.finditer(text, a, b):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, b))
    return spans


def _cut(text: str, a: int, b: int, limit: int, levels: tuple[re.Pattern[str], ...]) -> list[tuple[int, int]]:
    a, b = _strip(text, a, b)
    if a >= b:
        return []
    if len(text[a:b].encode()) <= limit:
        return [(a, b)]
    if not levels:
        return _words(text, a, b, limit)
    return [
        piece for start, end in _split(text, a, b, levels[0]) for piece in _cut(text, start, end, limit, levels[1:])
    ]


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _words(text: str, a: int, b: int, limit: int) -> list[tuple[int, int]]:
    """Runs of whole words of about a quarter of `limit` bytes (packing joins them again); a single "word"
    longer than `limit` (a hash, a URL) is cut by bytes."""
    whole, limit = limit, max(1, limit // 4)
    pieces: list[tuple[int, int]] = []
    start = end = -1
    size = 0
    for match in WORD.finditer(text, a, b):
        word = len(match.group().encode())
        if start >= 0 and size + 1 + word <= limit:
            end, size = match.end(), size + 1 + word
            continue
        if start >= 0:
            pieces.append((start, end))
        if word > whole:
            pieces.extend(_hard_cut(text, match.start(), match.end(), whole))
            start = -1
            continue
        start, end, size = match.start(), match.end(), word
    if start >= 0:
        pieces.append((start, end))
    return pieces


def _hard_cut(text: str, a: int, b: int, limit: int) -> list[tuple[int, int]]:
    pieces, start, size = [], a, 0
    for i in range(a, b):
        width = len(text[i].encode())
        if size + width > limit:
            pieces.append((start, i))
            start, size = i, 0
        size += width
    pieces.append((start, b))
    return pieces


class _Packer:
    """Packs units into (start, end, first section, last section) spans, evenly sized within a section."""

    def __init__(self, extracted: Extracted, units: list[_Unit], budget: int, overlap: int) -> None:
        self.extracted, self.text, self.units = extracted, extracted.text, units
        self.budget, self.overlap = budget, overlap
        self.bounds = _section_bounds(extracted)
        self.at: list[int] = []  # at[k]: UTF-8 bytes from the first unit's start to unit k's start
        self.section_last: dict[int, int] = {}  # section -> index of its last unit
        offset = 0
        for k, unit in enumerate(units):
            if k:
                offset += units[k - 1].size + len(self.text[units[k - 1].end : unit.start].encode())
            self.at.append(offset)
            self.section_last[unit.section] = k

    def spans(self) -> list[tuple[int, int, int, int]]:
        spans: list[tuple[int, int, int, int]] = []
        i = 0
        while i < len(self.units):
            first = self.units[i]
            start, room = first.start, self.budget
            prev = spans[-1] if spans else None
            # The overlap never crowds out the chunk's first unit.
            allowed = min(self.overlap, self.budget - len(self.text[prev[1] : first.end].encode())) if prev else 0
            if prev is not None and prev[3] == first.section and allowed > 0:
                floor = max(prev[0] + 1, self.bounds[first.section][0])
                tail = _overlap_start(self.text, floor, prev[1], allowed)
                if tail < prev[1]:
                    start, room = tail, self.budget - len(self.text[tail : first.start].encode())
            j = self._take(i, room)
            spans.append((start, self.units[j - 1].end, first.section, self.units[j - 1].section))
            i = j
        return spans

    def _size(self, i: int, j: int) -> int:
        """Bytes from unit i's start to unit j's end."""
        return self.at[j] + self.units[j].size - self.at[i]

    def _take(self, i: int, room: int) -> int:
        """Index after the last unit of the chunk that starts at unit i."""
        units, sections = self.units, self.extracted.sections
        rest = self._size(i, self.section_last[units[i].section])
        goal = rest / math.ceil(rest / room)  # even pieces: no tiny tail
        j = i + 1
        while j < len(units):
            unit, size = units[j], self._size(i, j - 1)
            if unit.section != units[j - 1].section:
                whole = self._size(i, self.section_last[unit.section])
                fits = size < MERGE_BELOW * room and whole <= room
                # A lone heading (or a line) runs on into its first subsection.
                runs_on = size < TINY * room and _within(
                    sections[unit.section].heading, sections[units[i].section].heading
                )
                if sections[unit.section].page != sections[units[j - 1].section].page or not (fits or runs_on):
                    break
                goal = whole / math.ceil(whole / room)
            elif size >= goal:
                break
            if self._size(i, j) > room:
                break
            j += 1
        return j


def _within(path: str, ancestor: str) -> bool:
    """Whether heading path `path` is `ancestor` or below it."""
    return not ancestor or path == ancestor or path.startswith(ancestor + HEADING_SEPARATOR)


def _overlap_start(text: str, floor: int, end: int, overlap: int) -> int:
    """Where the repeated tail of the previous chunk begins: at most `overlap` bytes before `end`, at a
    sentence start if there is one in reach, else at a word start; `end` when no whole word fits."""
    lo = max(floor, end - overlap)
    size = len(text[lo:end].encode())
    while size > overlap and lo < end:
        size -= len(text[lo].encode())
        lo += 1
    if lo > floor and not text[lo - 1].isspace():  # inside a word: start at the next one
        while lo < end and not text[lo].isspace():
            lo += 1
    sentence = SENTENCE_START.search(text, lo, end)
    if sentence is not None and end - sentence.end() >= (end - lo) / 3:  # not just the last few words
        lo = sentence.end()
    return _strip(text, lo, end)[0] if lo < end else end


def _heading(extracted: Extracted, first: int, last: int) -> str:
    """A chunk's heading path: its section's; over lone headings and their subsection, the subsection's;
    over sibling sections, the part of the path they share (else the first one's)."""
    headings = [extracted.sections[n].heading for n in range(first, last + 1)]
    if all(_within(headings[-1], h) for h in headings):
        return headings[-1]
    paths = [h.split(HEADING_SEPARATOR) for h in headings]
    shared: list[str] = []
    for parts in zip(*paths, strict=False):
        if any(p != parts[0] for p in parts):
            break
        shared.append(parts[0])
    return HEADING_SEPARATOR.join(shared) if shared and shared != [""] else headings[0]
