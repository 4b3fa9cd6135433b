"""Rate limits and quotas: requests per minute (per user and per IP), tokens per day, concurrent answers.

With Redis every check is one atomic Lua script (a sliding-window log in a sorted set, timed by the
Redis server's clock, so several workers share exact counts and parallel requests cannot overshoot).
Without Redis, or while it is away, the same algorithms run in-process under a lock.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import Settings
from rubin_app.models import Role, User, UserLimit
from rubin_app.models.user import utcnow
from rubin_app.services.chats import InputError
from rubin_app.services.redis_store import RedisStore

WINDOW_MS = 60_000
DAY_SECONDS = 86_400

# KEYS[1] sorted set of request stamps; ARGV: window ms, limit, member. Returns {allowed, count, retry_ms}.
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, count + 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, count, math.max(1, tonumber(oldest[2]) + window - now)}
"""

# KEYS[1] sorted set of running answers scored by expiry; ARGV: ttl ms, limit, member. Returns 1/0.
ACQUIRE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Limits:
    """The limits of one user (0: unlimited)."""

    requests_per_minute: int = 0
    ip_requests_per_minute: int = 0
    tokens_per_day: int = 0
    concurrent: int = 0


class LimitExceeded(InputError):
    """A request over a limit: `code` names the limit; the params say the limit and when it resets."""

    def __init__(self, code: str, limit: int, retry_after: float) -> None:
        wait = max(1, int(retry_after + 0.999))
        # Rounded up like the seconds: 7 h 1 min is "in 8 h", and the last hour before midnight is "in 1 h", not 0.
        super().__init__(code, limit=limit, seconds=wait, minutes=-(-wait // 60), hours=-(-wait // 3600))
        self.limit = limit
        self.retry_after = float(wait)


async def get_limits(*, session: AsyncSession, settings: Settings, user_id: int) -> Limits:
    """The user's limits: the settings' defaults, overridden per user by an admin."""
    override = await session.get(UserLimit, user_id)

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    return Limits(
        requests_per_minute=pick(override.requests_per_minute if override else None, settings.rate_limit_rpm),
        ip_requests_per_minute=settings.rate_limit_ip_rpm,
        tokens_per_day=pick(override.tokens_per_day if override else None, settings.tokens_per_day),
        concurrent=pick(override.concurrent if override else None, settings.max_concurrent_answers),
    )


async def set_limits(
    *, session: AsyncSession, actor_id: int, user_id: int, requests_per_minute: int | None,
    tokens_per_day: int | None, concurrent: int | None,
) -> UserLimit:  # fmt: skip
    """Override a user's limits (admins only; None: back to the default)."""
    actor = await session.get(User, actor_id)
    if actor is None or actor.role != Role.admin:
        raise InputError("admin_only")
    if await session.get(User, user_id) is None:
        raise InputError("account_not_found")
    for value in (requests_per_minute, tokens_per_day, concurrent):
        if value is not None and not 0 <= value <= 10_000_000:
            raise InputError("bad_limit")
    row = await session.get(UserLimit, user_id) or UserLimit(user_id=user_id)
    row.requests_per_minute, row.tokens_per_day, row.concurrent = requests_per_minute, tokens_per_day, concurrent
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()
    return row


def _seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    return (datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1) - now).total_seconds()


def _today() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")


class Limiter:
    """Checks and counts; Redis when configured and reachable, in-process otherwise."""

    def __init__(self, store: RedisStore | None, slot_ttl: float = 900.0) -> None:
        self.store = store
        self.slot_ttl = slot_ttl
        self._lock = asyncio.Lock()
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._slots: dict[str, dict[str, float]] = defaultdict(dict)
        self._tokens: dict[str, int] = defaultdict(int)

    # ---- requests per minute -------------------------------------------------------------------
    async def hit(self, name: str, limit: int, window_ms: int = WINDOW_MS) -> tuple[bool, float]:
        """Count one request in a sliding window; (allowed, seconds until the window has room)."""
        if limit <= 0:
            return True, 0.0
        member = uuid.uuid4().hex
        if self.store is not None:
            store = self.store

            async def action(client) -> tuple[bool, float]:
                allowed, _count, retry_ms = await client.eval(
                    SLIDING_WINDOW, 1, store.key("rl", name), window_ms, limit, member
                )
                return bool(allowed), int(retry_ms) / 1000

            return await store.run(action, lambda: self._hit_local(name, limit, window_ms))
        return await self._hit_local(name, limit, window_ms)

    async def _hit_local(self, name: str, limit: int, window_ms: int) -> tuple[bool, float]:
        async with self._lock:
            now = time.monotonic() * 1000
            stamps = self._windows[name]
            while stamps and stamps[0] <= now - window_ms:
                stamps.popleft()
            if len(stamps) < limit:
                stamps.append(now)
                return True, 0.0
            return False, max(0.001, (stamps[0] + window_ms - now) / 1000)

    # ---- tokens per day ------------------------------------------------------------------------
    async def tokens_today(self, user_id: int) -> int:
        """Tokens the user's answers used today (UTC)."""
        name = f"tok:{user_id}:{_today()}"
        if self.store is not None:
            store = self.store

            async def action(client) -> int:
                return int(await client.get(store.key(name)) or 0)

            return await store.run(action, lambda: self._tokens[name])
        return self._tokens[name]

    async def add_tokens(self, user_id: int, tokens: int) -> None:
        """Count an answer's tokens against today's quota."""
        if tokens <= 0:
            return
        name = f"tok:{user_id}:{_today()}"
        self._tokens[name] += tokens  # kept in-process too: the fallback stays close when Redis goes away
        if self.store is not None:
            store = self.store

            async def action(client) -> None:
                async with client.pipeline(transaction=True) as pipe:
                    await pipe.incrby(store.key(name), tokens).expire(store.key(name), DAY_SECONDS * 2).execute()

            await store.run(action, lambda: None)

    # ---- concurrent answers --------------------------------------------------------------------
    async def acquire(self, user_id: int, limit: int) -> str | None:
        """Take one of the user's answer slots; the slot id, or None when all are taken."""
        slot = uuid.uuid4().hex
        if limit <= 0:
            return slot
        if self.store is not None:
            store = self.store

            async def action(client) -> str | None:
                ok = await client.eval(
                    ACQUIRE_SLOT, 1, store.key("slots", user_id), int(self.slot_ttl * 1000), limit, slot
                )
                return slot if ok else None

            return await store.run(action, lambda: self._acquire_local(user_id, limit, slot))
        return await self._acquire_local(user_id, limit, slot)

    async def _acquire_local(self, user_id: int, limit: int, slot: str) -> str | None:
        async with self._lock:
            now = time.monotonic()
            slots = self._slots[str(user_id)]
            for key in [k for k, exp in slots.items() if exp <= now]:
                del slots[key]
            if len(slots) >= limit:
                return None
            slots[slot] = now + self.slot_ttl
            return slot

    async def release(self, user_id: int, slot: str) -> None:
        """Give a slot back when its answer ends."""
        self._slots[str(user_id)].pop(slot, None)
        if self.store is not None:
            store = self.store

            async def action(client) -> None:
                await client.zrem(store.key("slots", user_id), slot)

            await store.run(action, lambda: None)

    # ---- one call per chat request ---------------------------------------------------------------
    async def check_request(self, *, user_id: int, ip: str, limits: Limits) -> None:
        """Refuse a new chat request over any limit (LimitExceeded); counts it otherwise."""
        if limits.tokens_per_day > 0:
            used = await self.tokens_today(user_id)
            if used >= limits.tokens_per_day:
                raise LimitExceeded("token_quota", limits.tokens_per_day, _seconds_to_midnight())
        ok, wait = await self.hit(f"user:{user_id}", limits.requests_per_minute)
        if not ok:
            raise LimitExceeded("rate_limit", limits.requests_per_minute, wait)
        if ip:
            ok, wait = await self.hit(f"ip:{ip}", limits.ip_requests_per_minute)
            if not ok:
                raise LimitExceeded("ip_rate_limit", limits.ip_requests_per_minute, wait)
