"""Rate limits and quotas: requests per minute (per user and per IP), tokens per day, concurrent answers.

With Redis every check is one atomic Lua script (a sliding-window log in a sorted set, timed by the
Redis server's clock, so several workers share exact counts and parallel requests cannot overshoot).
Without Redis, or while it is away, the same algorithms run in-process under a lock.

Tokens per day are reserved, then settled. Admitting an answer reserves an estimate of what it may use,
never more than what is left today, in the same script (or under the same lock) that checks the quota:
left = quota - settled - live reservations; nothing left refuses (`token_quota`). The answer is then held
to its reservation (the runtime lowers its `max_tokens`), and when it ends the reservation is replaced by
the real count (an answer that fails or is refused settles 0). So parallel answers share what is left
instead of each seeing all of it. A reservation whose worker died lapses after `slot_ttl`, like a slot.
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
# What an answer reserves of a token quota when LLM_MAX_TOKENS does not bound it (plus its context budget).
DEFAULT_ANSWER_TOKENS = 2_048

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

# One round trip for a new answer: KEYS user window, IP window, answer slots; ARGV window ms, user limit, IP limit,
# slot ttl ms, slot limit (a limit of 0: not checked), window member, slot id. Everything is checked before
# anything is counted: a refused request counts nowhere. Returns {0, 0} (admitted) or {which, retry ms} with
# which = 1 (user rate), 2 (IP rate), 3 (answers at once).
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, ulimit, iplimit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, slimit = tonumber(ARGV[4]), tonumber(ARGV[5])
local function full(key, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return math.max(1, tonumber(oldest[2]) + window - now)
  end
  return nil
end
if ulimit > 0 then local r = full(KEYS[1], ulimit) if r then return {1, r} end end
if iplimit > 0 then local r = full(KEYS[2], iplimit) if r then return {2, r} end end
if slimit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= slimit then return {3, 0} end
end
if ulimit > 0 then redis.call('ZADD', KEYS[1], now, ARGV[6]) redis.call('PEXPIRE', KEYS[1], window) end
if iplimit > 0 then redis.call('ZADD', KEYS[2], now, ARGV[6]) redis.call('PEXPIRE', KEYS[2], window) end
if slimit > 0 then redis.call('ZADD', KEYS[3], now + ttl, ARGV[7]) redis.call('PEXPIRE', KEYS[3], ttl) end
return {0, 0}
"""

# KEYS[1] the day's settled tokens, KEYS[2] hash of live reservations (member -> "tokens:expiry ms");
# ARGV: quota, estimate, member, reservation ttl ms, key ttl s. Returns {reserved (0: refused), settled, held}.
RESERVE_TOKENS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local held = 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local amount, expires = string.match(all[i + 1], '^(%d+):(%d+)$')
  if amount == nil or tonumber(expires) <= now then
    redis.call('HDEL', KEYS[2], all[i])
  else
    held = held + tonumber(amount)
  end
end
local left = tonumber(ARGV[1]) - used - held
if left <= 0 then
  return {0, used, held}
end
local take = math.min(tonumber(ARGV[2]), left)
redis.call('HSET', KEYS[2], ARGV[3], take .. ':' .. (now + tonumber(ARGV[4])))
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {take, used, held}
"""

# KEYS[1] settled tokens, KEYS[2] reservations; ARGV: member, real tokens, key ttl s. The reservation goes and
# the real count comes in one step: no moment where both, or neither, count.
SETTLE_TOKENS = """
redis.call('HDEL', KEYS[2], ARGV[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('INCRBY', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
"""


@dataclass(frozen=True)
class Reservation:
    """Tokens held for one answer until it ends: `day` is the counter it was taken from."""

    user_id: int | str  # a user id, or "key<id>" for an API key's own quota
    day: str
    tokens: int
    in_redis: bool


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
        self._held: dict[str, dict[str, tuple[int, float]]] = defaultdict(dict)  # in-process reservations
        self._reservations: dict[str, Reservation] = {}  # this worker's live reservations, by ticket

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
    async def tokens_today(self, user_id: int | str) -> int:
        """Tokens the user's answers used today (UTC), settled ones only (not what running answers hold)."""
        name = f"tok:{user_id}:{_today()}"
        if self.store is not None:
            store = self.store

            async def action(client) -> int:
                return int(await client.get(store.key(name)) or 0)

            return await store.run(action, lambda: self._tokens[name])
        return self._tokens[name]

    async def add_tokens(self, user_id: int | str, tokens: int) -> None:
        """Count an answer's tokens against today's quota (an answer that reserved none: `settle` otherwise)."""
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

    async def reserve_tokens(self, user_id: int | str, quota: int, estimate: int, ticket: str) -> int:
        """Hold up to `estimate` tokens of today's quota for one answer, checked and taken in one step.

        Returns the tokens held: the estimate, or what is left when that is less; 0 when nothing is left
        (the caller refuses). The ticket settles it (`settle_tokens`) or gives it back (`release`).
        """
        estimate = max(1, estimate)
        day = _today()
        name = f"tok:{user_id}:{day}"
        if self.store is not None:
            store = self.store

            async def action(client) -> tuple[int, bool]:
                taken, _used, _held = await client.eval(
                    RESERVE_TOKENS, 2, store.key(name), store.key("tokres", user_id, day),
                    quota, estimate, ticket, int(self.slot_ttl * 1000), DAY_SECONDS * 2,
                )  # fmt: skip
                return int(taken), True

            async def fallback() -> tuple[int, bool]:
                return await self._reserve_local(name, quota, estimate, ticket), False

            taken, in_redis = await store.run(action, fallback)
        else:
            taken, in_redis = await self._reserve_local(name, quota, estimate, ticket), False
        if taken > 0:
            self._reservations[ticket] = Reservation(user_id, day, taken, in_redis)
        return taken

    async def _reserve_local(self, name: str, quota: int, estimate: int, ticket: str) -> int:
        async with self._lock:
            now = time.monotonic()
            held = self._held[name]
            for key in [k for k, (_, exp) in held.items() if exp <= now]:
                del held[key]
            left = quota - self._tokens[name] - sum(amount for amount, _ in held.values())
            if left <= 0:
                return 0
            taken = min(estimate, left)
            held[ticket] = (taken, now + self.slot_ttl)
            return taken

    def reserved(self, ticket: str | None) -> int | None:
        """The tokens a live reservation of this worker holds (None: no reservation, no quota)."""
        found = self._reservations.get(ticket) if ticket else None
        return found.tokens if found is not None else None

    async def settle_tokens(self, ticket: str, tokens: int) -> None:
        """An answer ended: its reservation gives way to the real count (0 for one that failed)."""
        found = self._reservations.pop(ticket, None)
        if found is None:
            return
        name = f"tok:{found.user_id}:{found.day}"
        tokens = max(0, tokens)
        self._held[name].pop(ticket, None)
        self._tokens[name] += tokens  # as in add_tokens: the in-process count follows Redis
        if found.in_redis and self.store is not None:
            store = self.store

            async def action(client) -> None:
                await client.eval(
                    SETTLE_TOKENS, 2, store.key(name), store.key("tokres", found.user_id, found.day),
                    ticket, tokens, DAY_SECONDS * 2,
                )  # fmt: skip

            await store.run(action, lambda: None)  # Redis away: the reservation lapses after slot_ttl

    # ---- concurrent answers --------------------------------------------------------------------
    async def acquire(self, user_id: int, limit: int, slot: str | None = None) -> str | None:
        """Take one of the user's answer slots; the slot id (`slot` or a new one), or None when all are taken."""
        slot = slot or uuid.uuid4().hex
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
        """Give a slot back when its answer ends, and the tokens it holds if they were not settled."""
        await self.settle_tokens(slot, 0)
        self._slots[str(user_id)].pop(slot, None)
        if self.store is not None:
            store = self.store

            async def action(client) -> None:
                await client.zrem(store.key("slots", user_id), slot)

            await store.run(action, lambda: None)

    # ---- one call per chat request ---------------------------------------------------------------
    async def admit(self, *, user_id: int, ip: str, limits: Limits, estimate: int = 1) -> str:
        """Admit a new answer: its tokens reserved (with a quota), its requests counted and an answer slot
        taken, in one Redis round trip besides the reservation; LimitExceeded otherwise (nothing kept).
        Returns the slot id, which is also the reservation's ticket. Without Redis: the same checks in-process."""
        store = self.store
        if store is None:
            return await self._admit_local(user_id=user_id, ip=ip, limits=limits, estimate=estimate)
        ticket = uuid.uuid4().hex
        if limits.tokens_per_day > 0 and not await self.reserve_tokens(
            user_id, limits.tokens_per_day, estimate, ticket
        ):
            raise LimitExceeded("token_quota", limits.tokens_per_day, _seconds_to_midnight())
        ip_limit = limits.ip_requests_per_minute if ip else 0

        async def action(client) -> tuple[int, float] | None:
            which, retry_ms = await client.eval(
                ADMIT, 3, store.key("rl", f"user:{user_id}"), store.key("rl", f"ip:{ip}"),
                store.key("slots", user_id), WINDOW_MS, limits.requests_per_minute, ip_limit,
                int(self.slot_ttl * 1000), limits.concurrent, uuid.uuid4().hex, ticket,
            )  # fmt: skip
            return int(which), int(retry_ms) / 1000

        try:
            outcome = await store.run(action, lambda: None)
            if outcome is None:  # Redis went away just now: the in-process checks
                await self.settle_tokens(ticket, 0)
                return await self._admit_local(user_id=user_id, ip=ip, limits=limits, estimate=estimate)
            which, wait = outcome
            if which == 1:
                raise LimitExceeded("rate_limit", limits.requests_per_minute, wait)
            if which == 2:
                raise LimitExceeded("ip_rate_limit", limits.ip_requests_per_minute, wait)
            if which == 3:
                raise LimitExceeded("concurrency", limits.concurrent, 5)
        except BaseException:
            await self.settle_tokens(ticket, 0)
            raise
        return ticket

    async def _admit_local(self, *, user_id: int, ip: str, limits: Limits, estimate: int) -> str:
        """`admit` in this process (no Redis, or Redis away): the same checks, the same all-or-nothing count."""
        ticket = uuid.uuid4().hex
        if limits.tokens_per_day > 0 and not await self.reserve_tokens(
            user_id, limits.tokens_per_day, estimate, ticket
        ):
            raise LimitExceeded("token_quota", limits.tokens_per_day, _seconds_to_midnight())
        windows = [(f"user:{user_id}", limits.requests_per_minute, "rate_limit")]
        if ip:
            windows.append((f"ip:{ip}", limits.ip_requests_per_minute, "ip_rate_limit"))
        refusal: LimitExceeded | None = None
        async with self._lock:
            now = time.monotonic() * 1000
            for name, limit, code in windows:
                stamps = self._windows[name]
                while stamps and stamps[0] <= now - WINDOW_MS:
                    stamps.popleft()
                if limit > 0 and len(stamps) >= limit:
                    refusal = LimitExceeded(code, limit, max(0.001, (stamps[0] + WINDOW_MS - now) / 1000))
                    break
            slots = self._slots[str(user_id)]
            for key in [k for k, exp in slots.items() if exp <= now / 1000]:
                del slots[key]
            if refusal is None and limits.concurrent > 0 and len(slots) >= limits.concurrent:
                refusal = LimitExceeded("concurrency", limits.concurrent, 5)
            if refusal is None:
                for name, limit, _code in windows:
                    if limit > 0:
                        self._windows[name].append(now)
                if limits.concurrent > 0:
                    slots[ticket] = now / 1000 + self.slot_ttl
        if refusal is not None:
            await self.settle_tokens(ticket, 0)
            raise refusal
        return ticket

    async def finish(self, user_id: int, slot: str, tokens: int) -> None:
        """An answer ended: settle its reservation (or count its tokens) and give its slot back; one round trip
        when it reserved nothing (no quota)."""
        store = self.store
        if self.reserved(slot) is not None or store is None:
            if self.reserved(slot) is not None:
                await self.settle_tokens(slot, tokens)
            else:
                await self.add_tokens(user_id, tokens)
            await self.release(user_id, slot)
            return
        name = f"tok:{user_id}:{_today()}"
        tokens = max(0, tokens)
        self._tokens[name] += tokens
        self._slots[str(user_id)].pop(slot, None)

        async def action(client) -> None:
            async with client.pipeline(transaction=False) as pipe:
                if tokens:
                    pipe.incrby(store.key(name), tokens).expire(store.key(name), DAY_SECONDS * 2)
                await pipe.zrem(store.key("slots", user_id), slot).execute()

        await store.run(action, lambda: None)

    async def check_request(
        self, *, user_id: int, ip: str, limits: Limits, estimate: int = 1, ticket: str | None = None
    ) -> str:
        """Refuse a new chat request over any limit (LimitExceeded); count it otherwise.

        With a token quota, `estimate` tokens (at most what is left) are reserved under the returned
        ticket, to settle when the answer ends; a refusal keeps nothing.
        """
        ticket = ticket or uuid.uuid4().hex
        if limits.tokens_per_day > 0 and not await self.reserve_tokens(
            user_id, limits.tokens_per_day, estimate, ticket
        ):
            raise LimitExceeded("token_quota", limits.tokens_per_day, _seconds_to_midnight())
        try:
            ok, wait = await self.hit(f"user:{user_id}", limits.requests_per_minute)
            if not ok:
                raise LimitExceeded("rate_limit", limits.requests_per_minute, wait)
            if ip:
                ok, wait = await self.hit(f"ip:{ip}", limits.ip_requests_per_minute)
                if not ok:
                    raise LimitExceeded("ip_rate_limit", limits.ip_requests_per_minute, wait)
        except BaseException:
            await self.settle_tokens(ticket, 0)
            raise
        return ticket
