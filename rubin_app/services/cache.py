"""Response cache: an identical request (model, messages, parameters) is answered from Redis.

Only deterministic requests are cached (temperature 0) unless a model's "cacheable" switch is on.
Keys are the SHA-256 of the whole canonical request (`ChatRequest.cache_key`: messages with every part,
tools, parameters) and its scope: the asking user by default, so one user
is never answered from another's question (CACHE_SHARED=true shares answers per model across users, and a
fast answer then tells a user that someone asked the same before); nothing readable is in the key;
values are sealed with the vault's Redis key (AES-256-GCM, the cache key as associated data), bounded in
size and expire after the TTL. Without Redis, or while it is away, the cache
is simply off (a miss) — answers are never cached in-process, where they would grow without bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from rubin_app.services.redis_store import RedisStore
from rubin_app.vault.sealing import UnreadableValue, UserCipher

KEY_VERSION = "v1"


@dataclass
class CachedAnswer:
    """What a cache hit replays."""

    text: str
    reasoning: str = ""
    completion_tokens: int | None = None


@dataclass
class ResponseCache:
    """Redis-backed answers with a TTL, a size bound and hit/miss counters."""

    store: RedisStore | None
    ttl: float = 3600.0
    max_bytes: int = 256_000
    hits: int = 0
    misses: int = 0
    skipped: int = 0
    cacheable_models: set[str] = field(default_factory=set)
    cipher: UserCipher | None = None  # the vault's Redis key: no answer is kept in clear (vault/)

    def applies(self, model: str, temperature: float | None) -> bool:
        """Whether a request may come from the cache (deterministic, or the model is switched on)."""
        return self.store is not None and self.ttl > 0 and (temperature == 0 or model in self.cacheable_models)

    async def get(self, key: str) -> CachedAnswer | None:
        """The cached answer, or None (a miss; also while Redis is away)."""
        store = self.store
        if store is None:
            return None

        async def action(client) -> bytes | None:
            return await client.get(store.key("cache", KEY_VERSION, key))

        raw = await store.run(action, lambda: None)
        if raw is None:
            self.misses += 1
            await self._count("misses")
            return None
        try:
            if self.cipher is not None:
                raw = self.cipher.open("cache:" + key, raw.decode())
            data = json.loads(raw)
            answer = CachedAnswer(str(data["text"]), str(data.get("reasoning", "")), data.get("completion_tokens"))
        except (ValueError, KeyError, TypeError, UnreadableValue):  # damaged, or sealed by a retired key
            self.misses += 1
            return None
        self.hits += 1
        await self._count("hits")
        return answer

    async def put(self, key: str, answer: CachedAnswer) -> bool:
        """Store a complete answer; False when it is too big or Redis is away."""
        store = self.store
        if store is None or not answer.text:
            return False
        text = json.dumps(
            {"text": answer.text, "reasoning": answer.reasoning, "completion_tokens": answer.completion_tokens},
            ensure_ascii=False,
        )
        raw = (self.cipher.seal("cache:" + key, text) if self.cipher is not None else text).encode()
        if len(raw) > self.max_bytes:
            self.skipped += 1
            return False

        async def action(client) -> bool:
            return bool(await client.set(store.key("cache", KEY_VERSION, key), raw, ex=max(1, int(self.ttl))))

        return await store.run(action, lambda: False)

    async def _count(self, name: str) -> None:
        store = self.store
        if store is None:
            return

        async def action(client) -> None:
            await client.incr(store.key("cache", "stats", name))

        await store.run(action, lambda: None)

    async def stats(self) -> dict[str, int]:
        """Hits and misses of all workers (Redis counters), or of this process while Redis is away."""
        store = self.store
        local = {"hits": self.hits, "misses": self.misses}
        if store is None:
            return local

        async def action(client) -> dict[str, int]:
            hits, misses = await client.mget(store.key("cache", "stats", "hits"), store.key("cache", "stats", "misses"))
            return {"hits": int(hits or 0), "misses": int(misses or 0)}

        return await store.run(action, lambda: local)
