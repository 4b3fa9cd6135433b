"""Key-encryption keys (KEKs): where they come from, their ids, wrapping data keys with them.

A keyring is an ordered list of 32-byte keys: the first encrypts (wraps) new and re-wrapped data keys, the
others only unwrap what they wrapped before a rotation. Sources, first that is set:
ENCRYPTION_KEY (comma-separated base64 keys), ENCRYPTION_KEY_COMMAND (a program that prints them, for an
external KMS or Vault), or the key file DATA_DIR/encryption.key (one base64 key per line; created on first
start with mode 0600; refused when group or others may read it).
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE_NAME = "encryption.key"
_WRAP_AAD = b"rubin data key|"


class KeyringError(Exception):
    """The keys cannot be loaded or do not match the data: the message says what to do."""


def derive(key: bytes, info: bytes, length: int = KEY_BYTES) -> bytes:
    """A subkey of `key` for one purpose (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=b"rubin-vault", info=info).derive(key)


def key_id(key: bytes) -> str:
    """8 hex characters that name a key and reveal nothing of it."""
    return derive(key, b"rubin kek id", 4).hex()


def new_key_text() -> str:
    """A fresh random key in the form the settings and the key file take."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_keys(text: str, source: str) -> list[bytes]:
    """Base64 keys separated by commas or lines; each must be 32 bytes."""
    keys: list[bytes] = []
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("#"))
    items = [item.strip() for line in lines for item in line.split(",") if item.strip()]
    for index, item in enumerate(items):
        try:
            raw = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise KeyringError(f"{source}: key {index + 1} is not base64") from None
        if len(raw) != KEY_BYTES:
            raise KeyringError(f"{source}: key {index + 1} is {len(raw)} bytes, not {KEY_BYTES}")
        keys.append(raw)
    if not keys:
        raise KeyringError(f"{source}: no key found")
    return keys


@dataclass(frozen=True)
class Keyring:
    """KEKs by id, the first current; `source` says where they came from (for messages, never the keys)."""

    keys: tuple[bytes, ...]
    source: str
    key_file: Path | None = None
    created: bool = False  # the key file was made by this load (a first start, or a lost file)

    @property
    def current_id(self) -> str:
        return key_id(self.keys[0])

    @property
    def ids(self) -> list[str]:
        return [key_id(k) for k in self.keys]

    def _by_id(self, kid: str) -> bytes:
        for key in self.keys:
            if key_id(key) == kid:
                return key
        raise KeyringError(
            f"a data key is wrapped by key {kid}, which {self.source} does not hold (it has {', '.join(self.ids)}); "
            "put the old key back (after the current one) — without it that data cannot be read"
        )

    def wrap(self, data_key: bytes, owner: str) -> tuple[str, str]:
        """(KEK id, base64 of nonce + wrapped key) for a data key, bound to its owner."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[0]).encrypt(nonce, data_key, _WRAP_AAD + owner.encode())
        return self.current_id, base64.b64encode(nonce + sealed).decode("ascii")

    def unwrap(self, kid: str, wrapped: str, owner: str) -> bytes:
        """The data key; KeyringError when the KEK is missing or the wrapped key was altered."""
        raw = base64.b64decode(wrapped)
        try:
            return AESGCM(self._by_id(kid)).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _WRAP_AAD + owner.encode())
        except InvalidTag:
            raise KeyringError(f"the data key of {owner} does not open with key {kid}: altered or wrong key") from None


def check_key_file(path: Path) -> None:
    """Refuse a key file that group or others may read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyringError(f"{path} has permissions {mode:o}: group and others must have none (run `chmod 600 {path}`)")


def write_key_file(path: Path, keys: list[str]) -> None:
    """Write the key file atomically, 0600 from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# Rubin encryption keys: the first encrypts, the others only decrypt. Losing them loses the data.\n")
        fh.write("\n".join(keys) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _create_key_file(path: Path) -> bool:
    """The first key, unless another process (a second worker starting) made the file first: never two keys."""
    draft = path.with_name(f"{path.name}.{os.getpid()}.new")
    write_key_file(draft, [new_key_text()])
    try:
        os.link(draft, path)  # atomic, and fails if the file exists
        return True
    except FileExistsError:
        return False
    finally:
        draft.unlink(missing_ok=True)


def load_keyring(*, setting: str, command: str, data_dir: Path, create: bool = True) -> Keyring:
    """The keyring from the first source that is set (see the module docstring)."""
    if setting.strip():
        return Keyring(tuple(parse_keys(setting, "ENCRYPTION_KEY")), "ENCRYPTION_KEY")
    if command.strip():
        try:
            done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KeyringError(f"ENCRYPTION_KEY_COMMAND could not run: {type(exc).__name__}: {exc}") from None
        if done.returncode != 0:
            raise KeyringError(f"ENCRYPTION_KEY_COMMAND exited with {done.returncode}: {done.stderr.strip()[:200]}")
        return Keyring(tuple(parse_keys(done.stdout, "ENCRYPTION_KEY_COMMAND")), "ENCRYPTION_KEY_COMMAND")
    path = data_dir / KEY_FILE_NAME
    created = False
    if not path.exists():
        if not create:
            raise KeyringError(f"no encryption key: {path} does not exist and ENCRYPTION_KEY is not set")
        created = _create_key_file(path)
    check_key_file(path)
    return Keyring(tuple(parse_keys(path.read_text(), str(path))), str(path), key_file=path, created=created)
