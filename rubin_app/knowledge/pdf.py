"""PDF text, page by page (pypdf), with the bookmarks' titles as headings."""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from rubin_app.knowledge.documents import Extracted, ExtractError, Section, heading_path, push_heading
from rubin_app.knowledge.sniff import clean_text

log = logging.getLogger(__name__)
# "exam-\nple" at a line end: one word split by the layout.
HYPHENATED = re.compile(r"(\w)-\n(\w)")


def read_pdf(data: bytes) -> Extracted:
    """Every page's text as one section (page numbers from 1); ExtractError for encrypted or damaged files."""
    try:
        reader = PdfReader(io.BytesIO(data))
        _unlock(reader)
        texts = [_page_text(page) for page in reader.pages]
        headings = _page_headings(reader, len(texts))
    except ExtractError:
        raise
    except (FileNotDecryptedError, DependencyError) as exc:
        raise ExtractError("encrypted") from exc
    except Exception as exc:  # pypdf raises PdfReadError, but also KeyError, ValueError... on damaged files
        log.info("unreadable PDF: %s", type(exc).__name__)
        raise ExtractError("corrupt", "The PDF structure is damaged.") from exc
    sections = [Section(text=t, page=n, heading=headings[n - 1]) for n, t in enumerate(texts, start=1) if t]
    return Extracted(kind="pdf", sections=sections, pages=len(texts))


def _unlock(reader: PdfReader) -> None:
    """A PDF with only an owner password opens with the empty user password; any other is refused."""
    if reader.is_encrypted and not reader.decrypt(""):
        raise ExtractError("encrypted")


def _page_text(page: Any) -> str:
    text = clean_text(page.extract_text() or "")
    text = HYPHENATED.sub(r"\1\2", text)
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def _page_headings(reader: PdfReader, count: int) -> list[str]:
    """For each page, the path of the last bookmark that starts on it or before it ("" without bookmarks)."""
    starts: list[tuple[int, int, str]] = []  # (page index, level, title)
    try:
        _walk_outline(reader, reader.outline, 1, starts)
    except Exception as exc:  # a damaged outline costs the headings, not the text
        log.info("unreadable PDF outline: %s", type(exc).__name__)
        return [""] * count
    starts.sort(key=lambda s: s[0])
    headings: list[str] = []
    stack: list[tuple[int, str]] = []
    n = 0
    for page in range(count):
        while n < len(starts) and starts[n][0] <= page:
            push_heading(stack, starts[n][1], starts[n][2])
            n += 1
        headings.append(heading_path(stack))
    return headings


def _walk_outline(reader: PdfReader, items: list[Any], level: int, out: list[tuple[int, int, str]]) -> None:
    for item in items:
        if isinstance(item, list):
            _walk_outline(reader, item, level + 1, out)
            continue
        page = reader.get_destination_page_number(item)
        title = " ".join(str(item.title or "").split())
        if page is not None and page >= 0 and title:
            out.append((page, level, title))
