"""Helpers of the API tests: users signed up through the app, keys written as the key service writes them."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import create_engine, pool, text

from rubin_app.accounts.api_keys import hash_key
from tests.api.conftest import LiveApp

DEFAULT_SCOPES = "chat conversations:read conversations:write"


def execute(app: LiveApp, sql: str, **params: Any) -> None:
    """A write to the app's database (committed)."""
    engine = create_engine(app.db_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def new_user(app: LiveApp, email: str) -> int:
    """Sign up through the app (the first account becomes the admin); its id."""
    response = app.sign_up(app.client(), email)
    assert response.status_code == 303, response.text[:200]
    return int(app.query("SELECT id FROM users WHERE email = :e", e=email)[0][0])


def new_key(app: LiveApp, user_id: int, scopes: str = DEFAULT_SCOPES, **cols: Any) -> str:
    """A key row as api_keys.create_key writes it (rpm, tpd, expires: its limits and expiry); the key."""
    plain = "rk-" + secrets.token_urlsafe(32)
    values = {"rpm": None, "tpd": None, "expires": None, **cols}
    execute(
        app,
        "INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, created_at, last_used_ip, requests_per_minute,"
        " tokens_per_day, expires_at) VALUES (:u, 'test', :p, :h, :s, CURRENT_TIMESTAMP, '', :rpm, :tpd, :expires)",
        u=user_id, p=plain[:11], h=hash_key(plain), s=scopes, **values,
    )  # fmt: skip
    return plain
