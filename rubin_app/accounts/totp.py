"""TOTP codes, secrets and recovery codes.

Secrets are sealed with the user's data key (vault/: AES-256-GCM, the user and the column as associated data,
so a secret copied onto another user's row does not open; deleting the user shreds it). Recovery codes are kept
as HMAC-SHA256 under a key derived from SECRET_KEY (HKDF): a leaked table alone cannot be brute-forced.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

STEP_SECONDS = 30
DIGITS = 6
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud or typed from paper
RECOVERY_GROUPS = 3  # "xxxx-xxxx-xxxx": 12 characters, about 59 bits
_SALT = b"rubin-two-factor"
_CODE_INFO = b"rubin recovery codes: hmac key"


SEALED_COLUMN = "totp_secrets.secret"  # sealed with the user's data key (vault/): the associated data


def _derive(secret_key: str, info: bytes, length: int) -> bytes:
    if not secret_key:
        raise ValueError("an empty SECRET_KEY cannot protect TOTP secrets")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(secret_key.encode("utf-8"))


def _aad(user_id: int) -> bytes:
    return f"rubin totp secret|user:{user_id}".encode()


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits, what authenticator apps expect)."""
    return pyotp.random_base32(32)


def current_step(now: datetime) -> int:
    """The 30-second time step a moment falls in."""
    return int(now.timestamp()) // STEP_SECONDS


def matching_step(secret: str, code: str, now: datetime, *, window: int = 1) -> int | None:
    """The time step (now, or up to `window` steps before or after) whose code this is, else None."""
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    found = None
    for step in range(current_step(now) - window, current_step(now) + window + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):  # every step is compared: constant work
            found = step
    return found


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=account, issuer_name=issuer)


def qr_data_url(uri: str) -> str:
    """The QR code of `uri` as an inline SVG data URL (made here: no network, no image library)."""
    import segno  # the QR code of two-factor setup only

    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#111", light="#fff"))


def new_recovery_codes(count: int) -> list[str]:
    """`count` fresh recovery codes, "xxxx-xxxx-xxxx"."""
    return [
        "-".join("".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(4)) for _ in range(RECOVERY_GROUPS))
        for _ in range(count)
    ]


def normalize_recovery_code(code: str) -> str:
    """What a typed recovery code means: lower case, without spaces and dashes."""
    return "".join(c for c in code.lower() if c.isalnum())


def looks_like_recovery_code(code: str) -> bool:
    """Whether typed text has the shape of a recovery code (not of a 6-digit code)."""
    plain = normalize_recovery_code(code)
    return len(plain) == 4 * RECOVERY_GROUPS and all(c in RECOVERY_ALPHABET for c in plain)


def hash_recovery_code(secret_key: str, user_id: int, code: str) -> str:
    """The keyed hash a recovery code is stored and looked up by."""
    key = _derive(secret_key, _CODE_INFO, 32)
    return hmac.new(key, f"{user_id}|{normalize_recovery_code(code)}".encode(), hashlib.sha256).hexdigest()
