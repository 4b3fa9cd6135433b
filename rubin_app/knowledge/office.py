"""Word, PowerPoint and Excel files (python-docx, python-pptx, openpyxl), after the zip-bomb check."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from typing import Any

import docx
import openpyxl
import pptx
from docx.table import Table
from pptx.enum.shapes import MSO_SHAPE_TYPE

from rubin_app.knowledge.documents import Extracted, Section, heading_path, push_heading
from rubin_app.knowledge.sniff import clean_text
from rubin_app.knowledge.tables import rows_to_lines

HEADING_STYLE = re.compile(r"(?:heading|заголовок)\s*(\d?)")


def read_docx(data: bytes) -> Extracted:
    """Paragraphs and tables in reading order, a section per heading ("Title", "Heading N" styles)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        document = docx.Document(io.BytesIO(data))
    levels = _style_levels(document)
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            if rows := _docx_table(block):
                lines.append("\n".join(rows))
            continue
        text = clean_text(block.text).strip()
        level = levels.get(block._p.style or "")  # the style id: python-docx's block.style is slow
        if level is not None and text:
            _close(sections, lines, heading_path(stack))
            push_heading(stack, level, " ".join(text.split()))
        if text:
            lines.append(text)
    _close(sections, lines, heading_path(stack))
    return Extracted(kind="docx", sections=sections)


def _style_levels(document: Any) -> dict[str, int]:
    """{paragraph style id: heading level}: 0 for "Title", N for "Heading N" ("Заголовок N" in a Russian
    LibreOffice file), else the style's outline level (N-1 in the XML)."""
    levels: dict[str, int] = {}
    for style in document.styles:
        name = (style.name or "").lower()
        match = HEADING_STYLE.fullmatch(name)
        outline = style.element.xpath("./w:pPr/w:outlineLvl/@w:val")
        if name == "title":
            levels[style.style_id] = 0
        elif match:
            levels[style.style_id] = int(match.group(1) or 1)
        elif outline and str(outline[0]).isdigit() and int(outline[0]) < 9:
            levels[style.style_id] = int(outline[0]) + 1
    return levels


def _docx_table(table: Table) -> list[str]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:  # a merged cell comes back once per grid column it spans
            text = " ".join(clean_text(cell.text).split())
            if not cells or cells[-1] != text:
                cells.append(text)
        rows.append(cells)
    return rows_to_lines(rows)


def _close(sections: list[Section], lines: list[str], heading: str, page: int | None = None) -> None:
    if lines:
        sections.append(Section(text="\n\n".join(lines), page=page, heading=heading))
        lines.clear()


def read_pptx(data: bytes) -> Extracted:
    """One section per slide (page = slide number, heading = its title): text boxes, tables, speaker notes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        deck = pptx.Presentation(io.BytesIO(data))
    sections: list[Section] = []
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(clean_text(title_shape.text_frame.text).split()) if title_shape is not None else ""
        lines = [title] if title else []
        for shape in _shapes(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            lines.extend(_shape_text(shape))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = clean_text(slide.notes_slide.notes_text_frame.text).strip()
            if notes:
                lines.append(notes)
        _close(sections, lines, title, page=number)
    return Extracted(kind="pptx", sections=sections, pages=len(deck.slides))


def _shapes(shapes: Any) -> Iterator[Any]:
    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _shape_text(shape: Any) -> list[str]:
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        return rows_to_lines(rows)
    if shape.has_text_frame:
        text = clean_text(shape.text_frame.text).strip()
        return [text] if text else []
    return []


def read_xlsx(data: bytes) -> Extracted:
    """One section per worksheet (heading = sheet name), a line per non-empty row; formulas as last computed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sections = []
            for sheet in book.worksheets:
                lines = rows_to_lines(sheet.iter_rows(values_only=True))
                if lines:
                    sections.append(Section(text=clean_text("\n".join(lines)), heading=sheet.title))
        finally:
            book.close()
    return Extracted(kind="xlsx", sections=sections)
