"""Signing secrets at rest: AES-256-GCM under a key derived from SECRET_KEY, ready for a key rotation."""

from __future__ import annotations

import base64

import pytest
from standardwebhooks import Webhook

from rubin_app.webhooks.crypto import SecretBox, SecretBoxError, new_signing_secret

KEY = "k" * 40
OTHER = "o" * 40


def test_a_new_secret_is_a_standard_webhooks_secret() -> None:
    secret = new_signing_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    Webhook(secret)  # accepted by the reference implementation
    assert new_signing_secret() != secret


def test_round_trip_and_the_stored_form() -> None:
    box = SecretBox(KEY)
    secret = new_signing_secret()
    stored = box.encrypt(secret)
    assert stored.startswith(f"v1.{box.key_id}.")
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    assert box.encrypt(secret) != stored  # a fresh nonce every time
    assert box.decrypt(stored) == secret
    assert len(stored) <= 200  # fits the column


def test_another_secret_key_cannot_decrypt_but_a_rotation_can() -> None:
    stored = SecretBox(OTHER).encrypt("whsec_abc")
    with pytest.raises(SecretBoxError, match="another SECRET_KEY"):
        SecretBox(KEY).decrypt(stored)
    rotated = SecretBox(KEY, previous_keys=[OTHER])
    assert rotated.decrypt(stored) == "whsec_abc"
    assert rotated.needs_reencrypt(stored)
    assert not rotated.needs_reencrypt(rotated.encrypt("whsec_abc"))


def test_tampering_is_detected() -> None:
    box = SecretBox(KEY)
    stored = box.encrypt("whsec_abc")
    i = len(stored) - 10  # inside the ciphertext (the last character may hold only padding bits)
    flipped = stored[:i] + ("A" if stored[i] != "A" else "B") + stored[i + 1 :]
    for damaged in (flipped, stored.replace("v1.", "v2.", 1), "whsec_abc", "v1." + box.key_id + ".!!"):
        with pytest.raises(SecretBoxError):
            box.decrypt(damaged)


def test_an_empty_secret_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty SECRET_KEY"):
        SecretBox("")
