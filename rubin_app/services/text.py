"""Text hygiene: which characters user text and model text may carry into the database and the UI.

Rules (one place, used by chats and chat_flow):
- Messages: a NUL or a lone surrogate is refused (PostgreSQL cannot store a NUL, no database can store
  a lone surrogate, and either means a broken paste or a crafted frame); other control characters but
  tab, newline and carriage return are removed (vertical tab, form feed and NEL become a newline).
- Titles: control and format characters are removed (bidi overrides and isolates, zero-width spaces,
  BOM, NUL, lone surrogates), except the joiners U+200C/U+200D and well-formed emoji tag sequences.
- Model output: a NUL or a lone surrogate becomes U+FFFD before it is saved; nothing else changes.
"""

from __future__ import annotations

import re
import unicodedata

REPLACEMENT = "\ufffd"
JOINERS = frozenset({"\u200c", "\u200d"})  # zero-width non-joiner (Persian, Indic) and joiner (emoji)
KEPT_CONTROLS = frozenset({"\t", "\n", "\r"})
NEWLINE_CONTROLS = frozenset({"\x0b", "\x0c", "\x85"})  # vertical tab, form feed, next line
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A subdivision flag (England, Scotland, Wales): black flag, tag letters, cancel tag. Kept whole.
_EMOJI_TAG_SEQUENCE = re.compile(r"\U0001F3F4[\U000E0020-\U000E007E]+\U000E007F")


def has_unstorable(text: str) -> bool:
    """True when the text holds a NUL or a lone surrogate (characters no database here can save)."""
    return "\x00" in text or _SURROGATE.search(join_surrogate_pairs(text)) is not None


def join_surrogate_pairs(text: str) -> str:
    """Combine surrogate pairs into the characters they encode; lone surrogates are left as they are."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def strip_controls(text: str) -> str:
    """Remove control characters but tab, newline and carriage return (VT, FF and NEL become newlines)."""
    return _CONTROL.sub(lambda m: "\n" if m.group() in NEWLINE_CONTROLS else "", text)


def for_storage(text: str) -> str:
    """Model text made safe to save: surrogate pairs joined, a NUL or lone surrogate becomes U+FFFD."""
    return _SURROGATE.sub(REPLACEMENT, join_surrogate_pairs(text)).replace("\x00", REPLACEMENT)


def strip_hidden(text: str) -> str:
    """Remove control and format characters (bidi controls, zero-width, BOM, NUL, lone surrogates), keeping
    the joiners and whole emoji tag sequences."""
    text = join_surrogate_pairs(text)
    kept: list[str] = []
    position = 0
    for sequence in _EMOJI_TAG_SEQUENCE.finditer(text):
        kept.append(_drop_hidden(text[position : sequence.start()]))
        kept.append(sequence.group())
        position = sequence.end()
    kept.append(_drop_hidden(text[position:]))
    return "".join(kept)


def _drop_hidden(text: str) -> str:
    return "".join(c for c in text if c in JOINERS or unicodedata.category(c) not in HIDDEN_CATEGORIES)
