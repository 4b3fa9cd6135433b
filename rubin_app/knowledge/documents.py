"""What extraction gives (sections of a document) and the error it raises, with a code per kind of bad file."""

from __future__ import annotations

from dataclasses import dataclass, field

# One plain English message per code, as en.json has it under `knowledge_error_<code>` (the UI translates).
MESSAGES: dict[str, str] = {
    "unsupported_type": "This type of file is not supported.",
    "encrypted": "The file is protected by a password. Upload a copy without the password.",
    "corrupt": "The file is damaged or incomplete and could not be read.",
    "empty": "The file contains no text to index.",
    "too_large": "The file is larger than the upload limit.",
    "zip_bomb": "The file unpacks to far more data than allowed (it looks like a zip bomb).",
}
# The i18n key of each code, spelled out so the catalogs' "every key is used" check finds them.
I18N_KEYS: dict[str, str] = {
    "unsupported_type": "knowledge_error_unsupported_type",
    "encrypted": "knowledge_error_encrypted",
    "corrupt": "knowledge_error_corrupt",
    "empty": "knowledge_error_empty",
    "too_large": "knowledge_error_too_large",
    "zip_bomb": "knowledge_error_zip_bomb",
}


class ExtractError(Exception):
    """A file that cannot be turned into text: `code` is one of MESSAGES, `message` says why in plain English."""

    def __init__(self, code: str, detail: str = "") -> None:
        if code not in MESSAGES:
            raise ValueError(f"unknown extraction error code {code!r}")
        self.code = code
        self.detail = detail
        self.message = f"{MESSAGES[code]} {detail}".strip()
        super().__init__(self.message)

    @property
    def i18n_key(self) -> str:
        """The interface string that explains this error (`knowledge_error_<code>`)."""
        return I18N_KEYS[self.code]


@dataclass(slots=True)
class Section:
    """A run of text under one heading on one page; `heading` is the path of headings, "H1 › H2"."""

    text: str
    page: int | None = None
    heading: str = ""


@dataclass(slots=True)
class Extracted:
    """A document's text in reading order: `kind` is what it was, `pages` how many it has (PDF pages, slides)."""

    kind: str
    sections: list[Section] = field(default_factory=list)
    pages: int | None = None

    @property
    def text(self) -> str:
        """The whole text: sections joined by a blank line (chunk offsets point into this string)."""
        return SECTION_SEPARATOR.join(s.text for s in self.sections)


SECTION_SEPARATOR = "\n\n"
HEADING_SEPARATOR = " › "


def heading_path(stack: list[tuple[int, str]]) -> str:
    """The heading path, "H1 › H2", of a stack of (level, title)."""
    return HEADING_SEPARATOR.join(title for _, title in stack if title)


def push_heading(stack: list[tuple[int, str]], level: int, title: str) -> None:
    """Replace the headings at `level` and deeper by `title` (a new H2 closes the previous H2 and its H3s)."""
    while stack and stack[-1][0] >= level:
        stack.pop()
    stack.append((level, title))
