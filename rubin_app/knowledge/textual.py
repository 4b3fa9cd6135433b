"""Text formats: Markdown (sections by heading), HTML (lxml), CSV, plain text and source code."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import lxml.html
from lxml import etree

from rubin_app.knowledge.documents import Extracted, ExtractError, Section, heading_path, push_heading
from rubin_app.knowledge.tables import rows_to_lines

ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
NOT_SETEXT_TEXT = re.compile(r"^\s*([-*+>|]|\d+[.)])\s|^\s*$|^ {0,3}#")


def read_plain(text: str, kind: str) -> Extracted:
    """Plain text or source code: one section, split later by blank lines and lines."""
    return Extracted(kind=kind, sections=[Section(text=text.strip())] if text.strip() else [])


def read_markdown(text: str) -> Extracted:
    """A section per ATX (#) or setext (===, ---) heading outside code fences; the heading line starts it."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    lines = text.split("\n")
    start, fence = 0, ""
    for n, line in enumerate(lines):
        if fence:
            fence = "" if line.strip().startswith(fence) else fence
            continue
        if match := FENCE.match(line):
            fence = match.group(1)[:3]
            continue
        level, title, first = _heading(lines, n)
        if level:
            _add(sections, lines[start:first], heading_path(stack))
            push_heading(stack, level, title)
            start = first
    _add(sections, lines[start:], heading_path(stack))
    return Extracted(kind="markdown", sections=sections)


def _heading(lines: list[str], n: int) -> tuple[int, str, int]:
    """(level, title, first line of the heading) if line n ends a heading, else (0, "", n)."""
    if match := ATX.match(lines[n]):
        return len(match.group(1)), _title(match.group(2)), n
    if match := SETEXT.match(lines[n]):
        above = lines[n - 1] if n > 0 else ""
        if n > 0 and not NOT_SETEXT_TEXT.match(above) and not FENCE.match(above):
            return (1 if match.group(1)[0] == "=" else 2), _title(above), n - 1
    return 0, "", n


def _title(raw: str) -> str:
    return " ".join(raw.strip().strip("*_`").split())


def _add(sections: list[Section], lines: list[str], heading: str, page: int | None = None) -> None:
    text = "\n".join(lines).strip()
    if text:
        sections.append(Section(text=text, page=page, heading=heading))


# --------------------------------------------------------------------------- HTML

SKIP = {"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas", "head", "nav"}
PARAGRAPHS = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "pre", "table", "ul",
    "ol", "dl", "figure", "form", "fieldset", "address", "details", "hr", "body",
}  # fmt: skip
LINES = {"li", "tr", "dt", "dd", "br", "caption", "figcaption", "summary", "option"}
CELLS = {"td", "th"}
BREAKS = ("\n", "\n\n")
CELL_END = "\x1f"  # a cell separator, dropped at a row's end, " | " elsewhere
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


class _HtmlText:
    """Collects text in reading order; blocks become line and paragraph breaks, headings start sections."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.stack: list[tuple[int, str]] = []
        self.parts: list[str] = []
        self.pre = 0

    def add(self, text: str | None) -> None:
        if text and not self.pre:
            inner = " ".join(text.split())
            text = (" " if text[0].isspace() else "") + inner + (" " if inner and text[-1].isspace() else "")
            if text == " " and (not self.parts or self.parts[-1] in BREAKS):
                return
        if text:
            self.parts.append(text)

    def add_raw(self, text: str) -> None:
        self.parts.append(text)

    def brk(self, mark: str) -> None:
        if self.parts and self.parts[-1] in BREAKS:
            self.parts[-1] = max(self.parts[-1], mark, key=len)
        else:
            self.parts.append(mark)

    def heading(self, level: int, title: str) -> None:
        self.close()
        push_heading(self.stack, level, title)
        self.parts += [title, "\n\n"]

    def close(self) -> None:
        text = re.sub(r"[ \t]*\x1f[ \t]*(?=\n|$)", "", "".join(self.parts)).replace("\x1f", " | ")
        text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
        if text:
            self.sections.append(Section(text=text, heading=heading_path(self.stack)))
        self.parts = []


def read_html(text: str) -> Extracted:
    """Visible text of an HTML page (no scripts, styles, navigation), a section per h1-h6."""
    try:
        # Bytes with the encoding named: a str with an <?xml encoding=...?> declaration (XHTML) is refused by lxml.
        root = lxml.html.document_fromstring(text.encode(), parser=lxml.html.HTMLParser(encoding="utf-8"))
    except (etree.ParserError, ValueError) as exc:
        raise ExtractError("empty") from exc
    out = _HtmlText()
    title = " ".join((root.findtext(".//title") or "").split())
    if title:
        push_heading(out.stack, 0, title)
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, el in walker:
        tag = el.tag if isinstance(el.tag, str) else ""
        if event == "start":
            _start(out, walker, el, tag)
        else:
            _end(out, el, tag)
    out.close()
    return Extracted(kind="html", sections=out.sections)


def _start(out: _HtmlText, walker: Any, el: Any, tag: str) -> None:
    if not tag or tag in SKIP or el.get("hidden") is not None or tag in HEADINGS:
        walker.skip_subtree()
        if tag in HEADINGS and (title := " ".join(el.text_content().split())):
            out.heading(HEADINGS[tag], title)
        return
    out.pre += tag == "pre"
    if tag in PARAGRAPHS:
        out.brk("\n\n")
    elif tag in LINES:
        out.brk("\n")
    out.add(el.text)


def _end(out: _HtmlText, el: Any, tag: str) -> None:
    skipped = not tag or tag in SKIP or el.get("hidden") is not None or tag in HEADINGS
    if not skipped:
        out.pre -= tag == "pre"
        if tag in PARAGRAPHS:
            out.brk("\n\n")
        elif tag in LINES:
            out.brk("\n")
        elif tag in CELLS:
            out.add_raw(CELL_END)
    out.add(el.tail)


# --------------------------------------------------------------------------- CSV


def read_csv(text: str, filename: str) -> Extracted:
    """A line per row ("Column: value; ..." under a header row); unparsable CSV is kept as plain text."""
    sample = text[:65536]
    delimiter = "\t" if filename.lower().endswith((".tsv", ".tab")) else _sniff(sample)
    try:
        lines = rows_to_lines(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:
        return read_plain(text, "csv")
    body = "\n".join(lines)
    return Extracted(kind="csv", sections=[Section(text=body)] if body else [])


def _sniff(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","
