"""The encrypted container of a backup: AES-256-GCM in authenticated chunks (the STREAM construction).

File layout: a header, then records. Header (41 bytes): magic `RUBINBAK`, format version (1 byte), the
fingerprint of BACKUP_KEY (8 bytes, reveals nothing of it), a random salt (16 bytes), the plaintext chunk
size (4 bytes), 4 bytes reserved. Each record: the ciphertext length (4 bytes) and AES-GCM of one chunk under
a per-file key (HKDF of BACKUP_KEY and the salt), nonce = chunk counter (8 bytes) + 3 zero bytes + a final
flag (1 byte), the header as associated data. A reordered, altered or dropped chunk fails its tag; a file cut
short lacks the chunk flagged final; another key shows in the fingerprint before any chunk is opened.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"RUBINBAK"
FORMAT_VERSION = 1
KEY_BYTES = 32
CHUNK_BYTES = 1 << 20
TAG_BYTES = 16
_HEADER = struct.Struct(">8sB8s16sI4s")
HEADER_BYTES = _HEADER.size
_LENGTH = struct.Struct(">I")


class BackupCryptoError(Exception):
    """The file is not a Rubin backup, is damaged or cut short, or needs another key: the message says which."""


def parse_key(text: str) -> bytes:
    """BACKUP_KEY: base64 of 32 random bytes (`python -m rubin_app backup new-key` prints one)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 of 32 random bytes (`python -m rubin_app backup new-key`)") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"is {len(raw)} bytes, not {KEY_BYTES} (`python -m rubin_app backup new-key` makes one)")
    return raw


def new_key_text() -> str:
    """A fresh BACKUP_KEY."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def _hkdf(key: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(key)


def fingerprint(key: bytes) -> str:
    """16 hex characters that name a backup key and reveal nothing of it."""
    return _hkdf(key, b"rubin-backup", b"rubin backup key id", 8).hex()


def _nonce(counter: int, final: bool) -> bytes:
    return struct.pack(">Q3xB", counter, 1 if final else 0)


class EncryptingWriter:
    """A write-only file object: what is written goes out encrypted, a chunk at a time; `close` seals the end."""

    def __init__(self, out: BinaryIO, key: bytes) -> None:
        salt = os.urandom(16)
        self._out = out
        self._header = _HEADER.pack(MAGIC, FORMAT_VERSION, bytes.fromhex(fingerprint(key)), salt, CHUNK_BYTES, b"")
        self._aead = AESGCM(_hkdf(key, salt, b"rubin backup file key", KEY_BYTES))
        self._buffer = bytearray()
        self._counter = 0
        self._closed = False
        out.write(self._header)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        """Buffer `data`; full chunks are encrypted and written out."""
        self._buffer += data
        while len(self._buffer) > CHUNK_BYTES:  # keep at least one byte back: the last chunk is the final one
            self._emit(bytes(self._buffer[:CHUNK_BYTES]), final=False)
            del self._buffer[:CHUNK_BYTES]
        return len(data)

    def flush(self) -> None:
        self._out.flush()

    def _emit(self, chunk: bytes, *, final: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._counter, final), chunk, self._header)
        self._out.write(_LENGTH.pack(len(sealed)) + sealed)
        self._counter += 1

    def close(self) -> None:
        """Write the last chunk, flagged final (once)."""
        if not self._closed:
            self._emit(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._closed = True
            self._out.flush()


def read_header(source: BinaryIO) -> tuple[int, str, bytes]:
    """(format version, key fingerprint, raw header) of a backup file; BackupCryptoError when it is none."""
    raw = source.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES or not raw.startswith(MAGIC):
        raise BackupCryptoError("not a Rubin backup file (no RUBINBAK header)")
    _magic, version, fp, _salt, _chunk, _reserved = _HEADER.unpack(raw)
    return version, fp.hex(), raw


def decrypt(source: BinaryIO, out: BinaryIO, key: bytes) -> int:
    """Decrypt a whole backup into `out`, checking every chunk and the final flag; returns the bytes written.
    Raises BackupCryptoError (newer format, another key, damaged, cut short) — `out` is then garbage."""
    version, fp, header = read_header(source)
    if version > FORMAT_VERSION:
        raise BackupCryptoError(
            f"made by a newer Rubin (backup format {version}; this version reads up to {FORMAT_VERSION}): "
            "restore it with that version or newer"
        )
    if fp != fingerprint(key):
        raise BackupCryptoError(
            f"encrypted with another backup key (fingerprint {fp}; BACKUP_KEY here is {fingerprint(key)}): "
            "set BACKUP_KEY to the key that made it"
        )
    salt, chunk_bytes = header[17:33], _HEADER.unpack(header)[4]
    aead = AESGCM(_hkdf(key, salt, b"rubin backup file key", KEY_BYTES))
    counter, written = 0, 0
    while True:
        length_raw = source.read(_LENGTH.size)
        if len(length_raw) < _LENGTH.size:
            raise BackupCryptoError(f"the file is cut short (truncated after {counter} chunks, no final chunk)")
        (length,) = _LENGTH.unpack(length_raw)
        if not TAG_BYTES <= length <= chunk_bytes + TAG_BYTES:
            raise BackupCryptoError(f"damaged at chunk {counter} (impossible length {length})")
        sealed = source.read(length)
        if len(sealed) < length:
            raise BackupCryptoError(f"the file is cut short (truncated inside chunk {counter})")
        chunk, final = _open(aead, counter, sealed, header)
        out.write(chunk)
        written += len(chunk)
        counter += 1
        if final:
            break
    if source.read(1):
        raise BackupCryptoError("damaged: data after the final chunk")
    return written


def _open(aead: AESGCM, counter: int, sealed: bytes, header: bytes) -> tuple[bytes, bool]:
    for final in (False, True):
        try:
            return aead.decrypt(_nonce(counter, final), sealed, header), final
        except InvalidTag:
            continue
    raise BackupCryptoError(f"damaged or reordered at chunk {counter} (authentication failed)")
