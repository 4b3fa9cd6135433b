"""TOTP secrets and recovery codes: the one place that encrypts, decrypts and hashes them.

Secrets are stored as `v1.<key id>.<base64url(nonce + ciphertext + tag)>` — the scheme of webhooks/crypto.py
(HKDF-SHA256 of SECRET_KEY -> AES-256-GCM, 12-byte random nonce) with a key of their own (another HKDF
info) and the user id in the associated data, so a secret copied onto another user's row does not open.
Recovery codes are kept as HMAC-SHA256 under a key derived the same way: a leaked table alone cannot be
brute-forced. The per-user key vault of issue #13 replaces the key derivation here, and only here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from datetime import datetime

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SCHEME = "v1"
STEP_SECONDS = 30
DIGITS = 6
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud or typed from paper
RECOVERY_GROUPS = 3  # "xxxx-xxxx-xxxx": 12 characters, about 59 bits
_SALT = b"rubin-two-factor"
_KEY_INFO = b"rubin totp secrets: aes-256-gcm key"
_ID_INFO = b"rubin totp secrets: key id"
_CODE_INFO = b"rubin recovery codes: hmac key"


class TotpSecretError(Exception):
    """A stored TOTP secret that cannot be decrypted (another SECRET_KEY, another user's row, damage)."""


def _derive(secret_key: str, info: bytes, length: int) -> bytes:
    if not secret_key:
        raise ValueError("an empty SECRET_KEY cannot protect TOTP secrets")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(secret_key.encode("utf-8"))


def _aad(user_id: int) -> bytes:
    return f"rubin totp secret|user:{user_id}".encode()


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits, what authenticator apps expect)."""
    return pyotp.random_base32(32)


def encrypt_secret(secret_key: str, user_id: int, secret: str) -> str:
    """The stored form of a user's TOTP secret."""
    key_id = _derive(secret_key, _ID_INFO, 4).hex()
    nonce = os.urandom(12)
    sealed = AESGCM(_derive(secret_key, _KEY_INFO, 32)).encrypt(nonce, secret.encode("ascii"), _aad(user_id))
    return f"{SCHEME}.{key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii').rstrip('=')}"


def decrypt_secret(secret_key: str, user_id: int, stored: str) -> str:
    """A user's TOTP secret from its stored form; TotpSecretError when it cannot be opened."""
    scheme, _, rest = stored.partition(".")
    key_id, _, token = rest.partition(".")
    if scheme != SCHEME or not token:
        raise TotpSecretError("not an encrypted TOTP secret")
    if key_id != _derive(secret_key, _ID_INFO, 4).hex():
        raise TotpSecretError("encrypted with another SECRET_KEY")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        plain = AESGCM(_derive(secret_key, _KEY_INFO, 32)).decrypt(raw[:12], raw[12:], _aad(user_id))
    except (InvalidTag, ValueError, binascii.Error):
        raise TotpSecretError("damaged encrypted TOTP secret") from None
    return plain.decode("ascii")


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
