"""Accounts that imitate another: emails or names that look the same once homoglyphs are folded.

A compact confusables skeleton in the spirit of Unicode TR39: NFKC, invisible characters dropped,
look-alike letters (Cyrillic, Greek, a few Latin and digit forms) mapped to one Latin letter, case folded.
Two accounts whose skeletons agree but whose text differs look alike to a human: the admin table warns.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# Before case folding: forms that differ from their look-alike only by case (I/l, 0/O).
_CASED = str.maketrans(
    {
        "I": "l", "1": "l", "|": "l", "0": "o", "O": "o", "Ι": "l", "І": "l", "Ӏ": "l",
        # capital Cyrillic and Greek letters shaped like Latin capitals (their lower-case forms are not)
        "В": "b", "Н": "h", "М": "m", "Т": "t", "Β": "b", "Η": "h", "Μ": "m", "Τ": "t", "Ν": "n", "Ζ": "z",
    }
)  # fmt: skip
# After case folding: lower-case look-alikes of Latin letters.
_FOLDED = str.maketrans(
    {
        # Cyrillic
        "а": "a", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k",
        "ӏ": "l", "о": "o", "р": "p", "ԛ": "q", "ѕ": "s", "у": "y", "ү": "y", "ԝ": "w", "х": "x", "ɡ": "g",
        # Greek
        "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "υ": "u", "χ": "x",
        # Latin and others
        "ı": "i", "ȷ": "j", "ɑ": "a", "ℓ": "l", "ſ": "s",
    }
)  # fmt: skip
_INVISIBLE = {"Cf", "Mn", "Me"}  # format characters (zero-width, bidi) and combining marks


def skeleton(text: str) -> str:
    """What `text` looks like: equal skeletons read the same to a person."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) not in _INVISIBLE)
    folded = text.translate(_CASED).casefold().translate(_FOLDED)
    return folded.replace("rn", "m").replace("vv", "w")


def lookalikes(accounts: Iterable[tuple[int, str, str]]) -> dict[int, str]:
    """{account id: the email of another account it looks like} for (id, email, display name) triples.

    An account is flagged when its email or its name has the same skeleton as another account's while the
    text differs (two people may share a plain name; a name that only *looks* the same is the warning).
    """
    rows = list(accounts)
    found: dict[int, str] = {}
    for field in (1, 2):
        seen: dict[str, list[tuple[int, str, str]]] = {}
        for row in rows:
            if row[field].strip():
                seen.setdefault(skeleton(row[field]), []).append(row)
        for group in seen.values():
            for row in group:
                other = next((o for o in group if o[field].casefold() != row[field].casefold()), None)
                if other is not None and row[0] not in found:
                    found[row[0]] = other[1]
    return found
