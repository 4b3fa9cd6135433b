"""Credentials: what makes an email, a display name and a password acceptable, and checking passwords.

Passwords are hashed with Argon2id (argon2-cffi). A check against an unknown account spends the same
time as a real one, so timing does not tell which emails have accounts.
"""

from __future__ import annotations

import re
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from rubin_app.services.chats import InputError
from rubin_app.services.text import has_unstorable

EMAIL_MAX = 254
NAME_MAX = 100
PASSWORD_MAX = 256
JOINERS = {"\u200c", "\u200d"}  # zero-width non-joiner and joiner
COMMON_PASSWORDS = frozenset(
    [
        "123456789012",
        "1234567890",
        "12345678901",
        "password123",
        "password1234",
        "qwertyuiop",
        "qwerty12345",
        "1q2w3e4r5t",
        "iloveyou123",
        "administrator",
        "passw0rd123",
        "welcome123",
        "letmein1234",
        "abc1234567",
        "0987654321",
        "1111111111",
        "monkey12345",
        "dragon12345",
        "football123",
        "baseball123",
        "sunshine123",
        "princess123",
        "qwerty123456",
        "password12",
        "йцукенгшщз",
        "1234567890q",
    ]
)

INTERNAL_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", re.I)

hasher = PasswordHasher()
_dummy_hash: str | None = None


def normalize_email(raw: str) -> str:
    """A syntactically valid email, lower-cased; InputError("bad_email") otherwise."""
    raw = (raw or "").strip()
    if not raw or len(raw) > EMAIL_MAX:
        raise InputError("bad_email")
    try:
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        pass
    # Company directories hand out addresses on internal names (user@corp.local, admin@intranet.lan) that
    # the validator rejects as special-use domains: accept them when the address is otherwise valid.
    local, _, domain = raw.rpartition("@")
    if local and INTERNAL_DOMAIN.match(domain):
        try:
            checked = validate_email(f"{local}@example.com", check_deliverability=False)
        except EmailNotValidError:
            raise InputError("bad_email") from None
        return f"{checked.local_part}@{domain}".lower()
    raise InputError("bad_email")


def clean_display_name(raw: str, fallback: str = "") -> str:
    """A one-line display name of printable characters (any script), at most NAME_MAX long."""
    name = " ".join((raw or "").split())
    # Format characters are refused (bidi overrides, zero-width spaces) except the two joiners that
    # emoji sequences (U+200D) and Persian or Indic scripts (U+200C) need.
    if any(unicodedata.category(c) in {"Cc", "Cf", "Co", "Cs"} and c not in JOINERS for c in name):
        raise InputError("bad_name")
    if len(name) > NAME_MAX:
        raise InputError("name_too_long", limit=NAME_MAX)
    return name or fallback


def check_password(password: str, *, email: str, min_length: int) -> None:
    """Minimum strength: long enough, not a well-known password, not the email."""
    if len(password) < min_length:
        raise InputError("password_too_short", limit=min_length)
    if len(password) > PASSWORD_MAX:
        raise InputError("password_too_long", limit=PASSWORD_MAX)
    if has_unstorable(password) or any(c < " " for c in password):
        raise InputError("password_bad_characters")
    lowered = password.casefold()
    if lowered in COMMON_PASSWORDS or len(set(password)) < 4:
        raise InputError("password_common")
    if email and (lowered == email.casefold() or lowered == email.split("@")[0].casefold()):
        raise InputError("password_like_email")


def verify(password_hash: str | None, password: str) -> bool:
    """Whether the password matches the hash; an unknown account (no hash) costs a check too."""
    global _dummy_hash
    if password_hash is None:
        # Unknown account: spend the same time as a real check, so timing does not reveal which emails exist.
        _dummy_hash = _dummy_hash or hasher.hash("not-a-real-password")
        password_hash = _dummy_hash
        verify_hash(password_hash, password)
        return False
    return verify_hash(password_hash, password)


def verify_hash(password_hash: str, password: str) -> bool:
    """Whether the password matches the Argon2 hash."""
    try:
        # "surrogatepass": a lone surrogate (a crafted form field) is bytes like any other, never a crash.
        return hasher.verify(password_hash, password.encode("utf-8", "surrogatepass"))
    except (VerificationError, InvalidHashError):
        return False
