"""Admission of a new answer and its settlement: the user's limits (rate, daily tokens, answers at once) are
checked and the tokens reserved before it starts; when it ends the reservation is settled to the real count
and its answer slot freed. Used by every front door (chat UI, REST API, OpenAI-compatible API)."""

from __future__ import annotations

import time

from rubin_app.config import Settings
from rubin_app.generation.run import Run
from rubin_app.services import limits
from rubin_app.services.db import session_scope
from rubin_app.services.limits import DEFAULT_ANSWER_TOKENS, Limiter, Limits

LIMITS_TTL = 10.0  # how long a user's limits are kept in a worker (an admin's change: at once in theirs)


class Admission:
    """The user's limits for new answers, in this worker."""

    def __init__(self, settings: Settings, limiter: Limiter) -> None:
        self.settings = settings
        self.limiter = limiter
        self._limits: dict[int, tuple[float, Limits]] = {}

    async def limits_for(self, user_id: int) -> Limits:
        """The user's limits (defaults from settings, per-user overrides from the database, re-read every 10 s)."""
        cached = self._limits.get(user_id)
        if cached is not None and time.monotonic() - cached[0] < LIMITS_TTL:
            return cached[1]
        async with session_scope(read_only=True) as session:
            found = await limits.get_limits(session=session, settings=self.settings, user_id=user_id)
        if len(self._limits) > 10_000:
            self._limits.clear()
        self._limits[user_id] = (time.monotonic(), found)
        return found

    def forget_limits(self, user_id: int) -> None:
        """An admin changed the user's limits: use the new ones at once in this worker."""
        self._limits.pop(user_id, None)

    @property
    def reservation(self) -> int:
        """Tokens an answer reserves of a daily quota: its longest context plus its longest answer."""
        return self.settings.context_token_budget + (self.settings.llm_max_tokens or DEFAULT_ANSWER_TOKENS)

    async def admit(self, user_id: int, ip: str = "") -> str | None:
        """Check a new answer against the user's limits, reserve its tokens and take an answer slot (one Redis
        round trip without a token quota); LimitExceeded if over. The slot id is also the reservation's ticket
        (settled by `settle`)."""
        user_limits = await self.limits_for(user_id)
        return await self.limiter.admit(user_id=user_id, ip=ip, limits=user_limits, estimate=self.reservation)

    def budget(self, run: Run) -> int | None:
        """The tokens a run may use in all: the smaller of its user's and its key's reservations (None: no quota)."""
        held = [t for t in (self.limiter.reserved(run.slot), self.limiter.reserved(run.key_ticket)) if t is not None]
        return min(held) if held else None

    async def settle(self, run: Run) -> None:
        """After an answer: settle its reserved tokens to the real count, free its slot.

        Cache hits, answers that failed before any text and runs discarded unsaved count 0."""
        tokens = run.quota_tokens
        if run.slot:
            await self.limiter.finish(run.user_id, run.slot, tokens)
        else:
            await self.limiter.add_tokens(run.user_id, tokens)
