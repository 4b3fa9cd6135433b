"""What a file is, judged by its bytes (magic numbers, zip members, whether it decodes as text); the
extension only tells text flavours apart. Also: text decoding and the zip-bomb check."""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from pathlib import PurePath

from charset_normalizer import from_bytes

from rubin_app.knowledge.documents import ExtractError

# Zip-based formats are recognised by a member only they have.
ZIP_KINDS = {"word/document.xml": "docx", "ppt/presentation.xml": "pptx", "xl/workbook.xml": "xlsx"}
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTED_OOXML = "EncryptedPackage".encode("utf-16-le")  # the stream name, in the OLE directory
# Binary formats people upload by mistake, named in the error.
BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF file (WebP image, WAV audio or AVI video)"),
    (b"\x7fELF", "a Linux program (ELF)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (OLE_MAGIC, "an old Office 97-2003 document (save it as .docx, .xlsx or .pptx)"),
    (b"%!PS", "a PostScript file"),
    (b"OggS", "an Ogg file"),
    (b"fLaC", "a FLAC file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x00\x00\x00", "a binary file"),
)
MARKDOWN_EXT = {".md", ".markdown", ".mdown", ".mkd", ".rst"}
HTML_EXT = {".html", ".htm", ".xhtml"}
CSV_EXT = {".csv", ".tsv", ".tab"}
CODE_EXT = {
    ".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".kts", ".scala", ".go", ".rs",
    ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".swift", ".m", ".mm", ".rb", ".php", ".pl", ".pm",
    ".lua", ".r", ".jl", ".dart", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".sql", ".css", ".scss",
    ".less", ".vue", ".svelte", ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".xml", ".proto",
    ".gradle", ".cmake", ".mk", ".dockerfile", ".tf", ".hs", ".ex", ".exs", ".erl", ".clj", ".elm", ".zig",
    ".nim", ".f90", ".asm", ".s", ".v", ".sv", ".vhd",
}  # fmt: skip
CODE_NAMES = {"makefile", "dockerfile", "containerfile", "gemfile", "rakefile", "cmakelists.txt", "justfile"}
MAX_ZIP_MEMBERS = 10_000
# A member that unpacks to more than this many times its packed size, and to more than BOMB_MIN_BYTES: a bomb.
BOMB_RATIO = 200
BOMB_MIN_BYTES = 16 * 1024 * 1024
SNIFF_BYTES = 64 * 1024
BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # not tab, newlines, form feed
PDF_HEADER = re.compile(rb"(?:^|[\r\n])%PDF-\d\.\d")
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def detect_kind(data: bytes, filename: str) -> str:
    """pdf | docx | pptx | xlsx | csv | markdown | html | text | code, by content; ExtractError otherwise."""
    if not data or data.isspace():
        raise ExtractError("empty")
    if _is_pdf(data):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if data.startswith(OLE_MAGIC) and ENCRYPTED_OOXML in data:
        raise ExtractError("encrypted")  # a password-protected DOCX/XLSX/PPTX is an OLE file holding the package
    for magic, what in BINARY_MAGIC:
        if data.startswith(magic):
            raise ExtractError("unsupported_type", f"It looks like {what}.")
    decode_text(data[:SNIFF_BYTES], sample=True)  # raises unsupported_type for binary data
    return _text_flavour(data, filename)


def _is_pdf(data: bytes) -> bool:
    """The header at the start, or (as readers allow) on a line of its own in the first 1 KB of a file that has
    PDF objects: a text file that merely mentions "%PDF-1.7" stays text."""
    if data[:1024].lstrip()[:5] == b"%PDF-":
        return True
    return PDF_HEADER.search(data[:1024]) is not None and b" obj" in data[:SNIFF_BYTES]


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        raise ExtractError("corrupt", "The zip container is damaged.") from exc
    for member, kind in ZIP_KINDS.items():
        if member in names:
            return kind
    if "content.xml" in names and "mimetype" in names:
        raise ExtractError("unsupported_type", "OpenDocument files are not supported: save it as .docx or .xlsx.")
    raise ExtractError("unsupported_type", "It looks like a zip archive: upload the files inside it instead.")


def _text_flavour(data: bytes, filename: str) -> str:
    path = PurePath(filename.lower())
    ext = path.suffix
    if ext in MARKDOWN_EXT:
        return "markdown"
    if ext in HTML_EXT:
        return "html"
    if ext in CSV_EXT:
        return "csv"
    if ext in CODE_EXT or path.name in CODE_NAMES:
        return "code"
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "text"


def decode_text(data: bytes, *, sample: bool = False) -> str:
    """Bytes of a text file as str: UTF-8 (with or without BOM), UTF-16 with BOM, else the detected charset."""
    text = _decode(data, sample=sample)
    if text is None or not _looks_like_text(text):
        raise ExtractError("unsupported_type", "It is not a document or a text file.")
    return clean_text(text)


def _decode(data: bytes, *, sample: bool) -> str | None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if b"\x00" in data[:SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A sample cut off in the middle of a character is still UTF-8.
        if sample and exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8-sig")
    best = from_bytes(data).best()
    return None if best is None else str(best)


def _looks_like_text(text: str) -> bool:
    sample = text[:SNIFF_BYTES]
    if not sample:
        return False
    controls = len(BINARY_CONTROLS.findall(sample))
    return controls / len(sample) < 0.01 and sample.count("\ufffd") / len(sample) < 0.01


def clean_text(text: str) -> str:
    """Unix newlines, no NUL or other control characters, Unicode NFC."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL_CHARS.sub("", text)
    return unicodedata.normalize("NFC", text)


def check_zip(data: bytes, *, max_expanded_bytes: int) -> None:
    """Refuse a zip container before anything unpacks it: too many members, too much data, or a bomb."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        raise ExtractError("corrupt", "The zip container is damaged.") from exc
    if len(members) > MAX_ZIP_MEMBERS:
        raise ExtractError("zip_bomb", f"It holds {len(members)} files (at most {MAX_ZIP_MEMBERS}).")
    total = sum(m.file_size for m in members)
    if total > max_expanded_bytes:
        raise ExtractError("zip_bomb", f"It unpacks to {total // 2**20} MB (at most {max_expanded_bytes // 2**20} MB).")
    for m in members:
        if m.file_size > BOMB_MIN_BYTES and m.file_size > BOMB_RATIO * max(m.compress_size, 1):
            raise ExtractError("zip_bomb", f"One part unpacks {m.file_size // max(m.compress_size, 1)} times.")
