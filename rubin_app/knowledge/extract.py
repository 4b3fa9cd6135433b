"""Text out of an uploaded file, judged by its content: PDF, DOCX, PPTX, XLSX, CSV, Markdown, HTML, text, code.

Pure and synchronous (CPU-bound: callers run it in a thread). Bad input raises ExtractError with a code
(`unsupported_type`, `encrypted`, `corrupt`, `empty`, `too_large`, `zip_bomb`) and a plain English message.
"""

from __future__ import annotations

import logging
import warnings

from rubin_app.knowledge.documents import Extracted, ExtractError, Section
from rubin_app.knowledge.office import read_docx, read_pptx, read_xlsx
from rubin_app.knowledge.pdf import read_pdf
from rubin_app.knowledge.sniff import CODE_EXT, CSV_EXT, HTML_EXT, MARKDOWN_EXT, check_zip, decode_text, detect_kind
from rubin_app.knowledge.textual import read_csv, read_html, read_markdown, read_plain

__all__ = ["KINDS", "SUPPORTED_EXTENSIONS", "ExtractError", "Extracted", "Section", "detect_kind", "extract"]

log = logging.getLogger(__name__)
KINDS = ("pdf", "docx", "pptx", "xlsx", "csv", "markdown", "html", "text", "code")
SCANNED = "It may be a scanned PDF (images of pages): text recognition is not supported."
# What an upload form may offer (`accept`): the type is still judged by content, whatever the name says.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".pdf", ".docx", ".pptx", ".xlsx", ".txt", ".text", ".log"} | MARKDOWN_EXT | HTML_EXT | CSV_EXT | CODE_EXT
)
ZIP_READERS = {"docx": read_docx, "pptx": read_pptx, "xlsx": read_xlsx}


def extract(data: bytes, filename: str, *, max_bytes: int, max_expanded_bytes: int) -> Extracted:
    """The file's text as sections (with pages and headings); ExtractError for anything that has none."""
    if len(data) > max_bytes:
        raise ExtractError("too_large", f"It is {_mb(len(data))}; the limit is {_mb(max_bytes)}.")
    kind = detect_kind(data, filename)
    extracted = _read(kind, data, filename, max_expanded_bytes=max_expanded_bytes)
    extracted.sections = [s for s in extracted.sections if s.text.strip()]
    if not extracted.sections:
        detail = (
            "It may be a scanned PDF (images of pages): text recognition is not supported." if kind == "pdf" else ""
        )
        raise ExtractError("empty", detail)
    if sum(len(s.text) for s in extracted.sections) > max_expanded_bytes:
        raise ExtractError("too_large", f"Its text is longer than {_mb(max_expanded_bytes)}.")
    return extracted


def _read(kind: str, data: bytes, filename: str, *, max_expanded_bytes: int) -> Extracted:
    if kind == "pdf":
        return read_pdf(data)
    if kind in ZIP_READERS:
        check_zip(data, max_expanded_bytes=max_expanded_bytes)
        try:
            return ZIP_READERS[kind](data)
        except ExtractError:
            raise
        except Exception as exc:  # BadZipFile, KeyError, lxml's XMLSyntaxError... from any of the three libraries
            log.info("unreadable %s: %s", kind, type(exc).__name__)
            raise ExtractError("corrupt", f"The {kind.upper()} file's contents are damaged.") from exc
    text = decode_text(data)
    if kind == "markdown":
        return read_markdown(text)
    if kind == "html":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read_html(text)
    if kind == "csv":
        return read_csv(text, filename)
    return read_plain(text, kind)


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"
