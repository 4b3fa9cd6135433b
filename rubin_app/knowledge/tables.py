"""Rows of a spreadsheet or CSV as lines of text: "Column: value; Column: value" under a header row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence


def cell_text(value: object) -> str:
    """One cell as text: whole floats without ".0", dates in ISO form, nothing for empty cells."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())


def rows_to_lines(rows: Iterable[Sequence[object]]) -> list[str]:
    """Non-empty rows as lines; when the first row is a header (all text), later rows name their columns."""
    header: list[str] | None = None
    lines: list[str] = []
    for raw in rows:
        cells = [cell_text(v) for v in raw]
        while cells and not cells[-1]:
            cells.pop()
        if not any(cells):
            continue
        if header is None and not lines:
            if _is_header(raw, cells):
                header = cells
                lines.append(" | ".join(cells))
                continue
            header = []
        lines.append(_line(header or [], cells))
    return lines


def _is_header(raw: Sequence[object], cells: list[str]) -> bool:
    filled = [v for v, c in zip(raw, cells, strict=False) if c]
    return len(filled) >= 2 and all(isinstance(v, str) and not _number(v) for v in filled)


def _number(text: str) -> bool:
    try:
        float(text.replace(",", ".").replace(" ", ""))
    except ValueError:
        return False
    return True


def _line(header: list[str], cells: list[str]) -> str:
    if not header:
        return " | ".join(cells)
    parts = [f"{header[i]}: {c}" if i < len(header) and header[i] else c for i, c in enumerate(cells) if c]
    return "; ".join(parts)
