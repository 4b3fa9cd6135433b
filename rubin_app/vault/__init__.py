"""Encryption at rest: per-user data keys wrapped by a key-encryption key, AES-256-GCM values.

keyring.py   the key-encryption keys (setting, command or key file in DATA_DIR) and wrapping
sealing.py   the stored value format and the per-user cipher (seal/open with associated data)
models.py    the user_keys table (one wrapped data key per user)
service.py   the Vault: data keys per user (cached), crypto-shredding, rotation, the Redis key
docs/data-protection.md says what is encrypted, how, and what stays in clear.
"""
