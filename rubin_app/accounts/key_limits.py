"""A key's own limits, on top of its user's: requests per minute and tokens per day (reserved, then settled).

The user's limits are checked as for the chat UI (`Runtime.admit`); these are the key's, checked first. A
key's daily tokens are reserved like the user's (the estimate at admission, the real count when the answer
ends), so parallel calls through one key never overshoot its quota either.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.services.limits import Limiter, LimitExceeded


def _seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    return ((now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0) - now).total_seconds()


async def admit_key(limiter: Limiter, key: KeyPrincipal, estimate: int) -> str | None:
    """Count a request against the key's limits (LimitExceeded when over); the ticket of its token
    reservation (settle it with `settle_key`), or None when the key has no token quota."""
    if key.requests_per_minute:
        ok, wait = await limiter.hit(f"key:{key.key_id}", key.requests_per_minute)
        if not ok:
            raise LimitExceeded("key_rate_limit", key.requests_per_minute, wait)
    if not key.tokens_per_day:
        return None
    ticket = f"key-{uuid.uuid4().hex}"
    if not await limiter.reserve_tokens(f"key{key.key_id}", key.tokens_per_day, estimate, ticket):
        raise LimitExceeded("key_token_quota", key.tokens_per_day, _seconds_to_midnight())
    return ticket


async def settle_key(limiter: Limiter, ticket: str | None, tokens: int) -> None:
    """The answer ended: the key's reservation gives way to the real count."""
    if ticket:
        await limiter.settle_tokens(ticket, tokens)
