"""Answers that outlive their worker: an answer left unfinished by a worker that died (kill -9, a crash, a lost
machine) or stopped (a deploy) is continued by another worker, or by this one after a restart.

Who generates what: each worker holds a lease in Redis for every answer it generates (`rubin:lease:<message id>`,
renewed every SCAN_SECONDS, expiring after LEASE_TTL). Every worker scans the answers the database says are
streaming; one seen without a lease for CONFIRM_SECONDS (a live owner renews within a second, also after Redis
restarted empty) is claimed (SET NX: exactly one worker wins) and resumed. A stopping worker saves its answers as
they are, still streaming, drops their leases and tells the others over the bus, so they are taken over at once.

Resuming: the partial answer is the longer of the saved text and the live relay stream (which runs ahead of the
last periodic save). With RESUME_ANSWERS=continue the model is asked again with that text as the assistant's
prefix and the run goes on from it (tabs see one answer that goes on); with `retry`, or after MAX_RESUMES
attempts, the answer is kept and marked interrupted, and the user gets Retry. Without Redis there is one worker:
whatever is streaming at start was left by the previous process and is resumed then.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rubin_app.generation.run import Run
from rubin_app.knowledge import citations
from rubin_app.llm.types import ChatRequest
from rubin_app.models import Message, MessageStatus
from rubin_app.services import chats
from rubin_app.services.context import Turn, build_context, estimate_tokens
from rubin_app.services.db import session_scope

if TYPE_CHECKING:
    from rubin_app.services.runtime import Runtime

log = logging.getLogger(__name__)
LEASE_TTL = 4  # seconds without renewal after which an answer's worker counts as gone
SCAN_SECONDS = 1.0  # how often leases are renewed and the database is scanned
CONFIRM_SECONDS = 2.5  # an answer must be seen without a lease for this long (a live owner renews within 1 s)
MAX_RESUMES = 3  # an answer that keeps killing its workers is not resumed for ever
HANDOVER = "answers_handed_over"  # bus message: a stopping worker's answers, to be taken over now
WORKER_LOST = "worker_lost"  # the error of an answer kept for Retry instead of being continued
# Answers of older versions were marked interrupted at the next start; their rows keep this error (err_restarted).
LEGACY_RESTARTED = "restarted"


class Recovery:
    """This worker's leases, the scan for answers nobody generates, and their resumption."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.worker_id = uuid.uuid4().hex
        self._free_since: dict[int, float] = {}  # answers seen without a lease, since when
        self._task: asyncio.Task[None] | None = None
        self._stopping = False  # handing over: this worker takes nothing over any more
        self.resumed: list[int] = []  # message ids resumed here (tests, logs)
        rt.bus.on(HANDOVER, self._on_handover)

    # ---- leases --------------------------------------------------------------------------------
    def _key(self, kind: str, message_id: int) -> str:
        assert self.rt.redis is not None
        return self.rt.redis.key(kind, message_id)

    async def renew(self) -> None:
        """Renew the leases of every answer generated here."""
        ids = self.rt.generation.active_ids()
        store = self.rt.redis
        if store is None or not ids:
            return

        async def action(client: Any) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for message_id in ids:
                    pipe.set(self._key("lease", message_id), self.worker_id, ex=LEASE_TTL)
                await pipe.execute()

        await store.run(action, lambda: None)

    async def _unleased(self, ids: Sequence[int]) -> list[int]:
        store = self.rt.redis
        if store is None or not ids:
            return []

        async def action(client: Any) -> list[int]:
            owners = await client.mget([self._key("lease", i) for i in ids])
            return [i for i, owner in zip(ids, owners, strict=True) if owner is None]

        return await store.run(action, lambda: [])  # Redis away: nobody can tell, nobody claims

    async def _claim(self, message_id: int) -> bool:
        """Take an answer over: True for exactly one worker."""
        store = self.rt.redis
        if store is None:
            return True

        async def action(client: Any) -> bool:
            return bool(await client.set(self._key("lease", message_id), self.worker_id, nx=True, ex=LEASE_TTL))

        return await store.run(action, lambda: False)

    async def _attempt(self, message_id: int, *, count: bool) -> int:
        """Count a resumption of this answer (how many so far, this one included); a hand-over from a worker that
        stopped in order is not counted (a rolling restart may move an answer several times)."""
        store = self.rt.redis
        if store is None or not count:
            return 1

        async def action(client: Any) -> int:
            key = self._key("resumes", message_id)
            async with client.pipeline(transaction=False) as pipe:
                count, _ = await pipe.incr(key).expire(key, 3600).execute()
            return int(count)

        return await store.run(action, lambda: 1)

    async def note_stop(self, message_id: int) -> None:
        """The user stopped an answer no worker runs right now: whoever takes it over ends it instead."""
        store = self.rt.redis
        if store is not None:

            async def action(client: Any) -> None:
                await client.set(self._key("stopped", message_id), "1", ex=300)

            await store.run(action, lambda: None)

    async def _stopped(self, message_id: int) -> bool:
        store = self.rt.redis
        if store is None:
            return False

        async def action(client: Any) -> bool:
            return bool(await client.exists(self._key("stopped", message_id)))

        return await store.run(action, lambda: False)

    # ---- the scan ------------------------------------------------------------------------------
    async def scan(self) -> int:
        """One pass: renew this worker's leases, then take over answers nobody generates. The number resumed."""
        if self._stopping:
            return 0
        await self.renew()
        local = set(self.rt.generation.active_ids())
        async with session_scope(read_only=True) as session:
            streaming = await chats.streaming_answers(session=session)
        candidates = [(mid, uid) for mid, uid in streaming if mid not in local]
        if self.rt.redis is None:
            orphans = candidates  # one worker: nobody else can be generating them
        else:
            now = time.monotonic()
            free = set(await self._unleased([mid for mid, _ in candidates]))
            self._free_since = {mid: self._free_since.get(mid, now) for mid in free}
            orphans = [(mid, uid) for mid, uid in candidates if now - self._free_since.get(mid, now) >= CONFIRM_SECONDS]
        count = 0
        for message_id, user_id in orphans:
            if await self._claim(message_id) and await self.take_over(message_id, user_id) is not None:
                count += 1
        return count

    def start(self) -> None:
        """Scan every SCAN_SECONDS (with Redis; one worker only needs the scan at start)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="answer-recovery")

    async def _loop(self) -> None:
        while True:
            try:
                await self.scan()
            except Exception:
                log.exception("the recovery scan failed")
            await asyncio.sleep(SCAN_SECONDS if self.rt.redis is not None else 60.0)

    async def stop(self) -> None:
        """Stop scanning."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def hand_over(self) -> list[int]:
        """This worker is stopping: save its answers as they are (still streaming), free their leases and tell
        the other workers, who take them over at once. The ids handed over."""
        self._stopping = True
        await self.rt.generation.settled()  # sends being saved this instant: their answers go over too
        ids = self.rt.generation.active_ids()
        await self.rt.generation.shutdown(handover=self.rt.settings.resume_answers == "continue")
        store = self.rt.redis
        if store is None or not ids:
            return ids
        # This worker's last pieces must be in the streams before another worker starts them again (a late piece
        # would land in the new stream and stop its followers).
        await self.rt.relay.close()

        async def action(client: Any) -> None:
            await client.delete(*[self._key("lease", i) for i in ids])

        await store.run(action, lambda: None)
        await self.rt.bus.publish(HANDOVER, message_ids=ids, worker=self.worker_id)
        log.info("handed %d unfinished answers over to the other workers", len(ids))
        return ids

    async def _on_handover(self, message: dict[str, Any]) -> None:
        if self._stopping or message.get("worker") == self.worker_id:
            return
        ids = [i for i in message.get("message_ids") or [] if isinstance(i, int)]
        for message_id in ids:
            if message_id in self.rt.generation.active_ids() or not await self._claim(message_id):
                continue
            async with session_scope(read_only=True) as session:
                user_id = await chats.answer_owner(session=session, message_id=message_id)
            if user_id is not None:
                await self.take_over(message_id, user_id, handed_over=True)

    # ---- resuming ------------------------------------------------------------------------------
    async def take_over(self, message_id: int, user_id: int, *, handed_over: bool = False) -> Run | None:
        """Continue (or keep for Retry) one unfinished answer of `user_id`; None when there is nothing to do."""
        try:
            return await self._take_over(message_id, user_id, handed_over)
        except Exception:
            log.exception("answer %s could not be taken over", message_id)
            return None

    async def _take_over(self, message_id: int, user_id: int, handed_over: bool) -> Run | None:
        rt = self.rt
        await rt.router.load()  # the answer's model may live on an added connection: know them before routing
        async with session_scope(read_only=True) as session:
            answer = await chats.get_message(session=session, user_id=user_id, message_id=message_id)
            if answer is None or answer.status != MessageStatus.streaming:
                return None
            history = await chats.list_turns(
                session=session, user_id=user_id, conversation_id=answer.conversation_id, before_id=message_id,
                limit=200,
            )  # fmt: skip
        live_text, live_think = await rt.relay.snapshot(message_id)
        text = live_text if live_text.startswith(answer.content) else answer.content
        think = live_think if live_think.startswith(answer.reasoning) else answer.reasoning
        if await self._stopped(message_id):
            await _end(message_id, user_id, text, think, error="stopped")
            return None
        attempts = await self._attempt(message_id, count=not handed_over)
        if rt.settings.resume_answers != "continue" or attempts > MAX_RESUMES or history is None:
            await _end(message_id, user_id, text, think, error=WORKER_LOST)
            log.warning("answer %s kept for Retry (its worker stopped; attempt %d)", message_id, attempts)
            return None
        request = self._request(answer, history, text)
        await rt.relay.reset(message_id)
        run = rt.generation.start(
            request, user_id=user_id, sinks=rt.sinks(rt.answer_writer()), conversation_id=answer.conversation_id,
            message_id=message_id, resume=(text, think), source="recovery",
        )  # fmt: skip
        run.ttft_ms = answer.ttft_ms
        await self.renew()
        rt.relay.publish(run)
        rt.chat_changed(user_id=user_id, conversation_id=answer.conversation_id)
        self.resumed.append(message_id)
        log.info("answer %s resumed here from %d characters (attempt %d)", message_id, len(text), attempts)
        return run

    def _request(self, answer: Message, history: Sequence[chats.Turn], partial: str) -> ChatRequest:
        """The conversation up to the answer, then the partial answer as the assistant's prefix to continue."""
        settings = self.rt.settings
        turns = [
            Turn(role=m.role.value, content=m.content)
            for m in history
            if m.role.value in ("user", "assistant") and m.status != MessageStatus.streaming
        ]
        budget = max(64, settings.context_token_budget - estimate_tokens(partial))
        # The numbered sources the answer was begun with (an assistant's prompt and memories are not asked again).
        sources, _memories = citations.load(answer.annotations)
        system = "\n\n".join(p for p in (settings.system_prompt, citations.system_block(sources, searched=False)) if p)
        context = build_context(system, turns, budget)
        if partial:
            context.append({"role": "assistant", "content": partial})
        params = self.rt.chat_params()
        if params.max_tokens is not None:
            params = params.model_copy(update={"max_tokens": max(1, params.max_tokens - estimate_tokens(partial))})
        return ChatRequest.of_turns(answer.model, context, params)


async def _end(message_id: int, user_id: int, text: str, think: str, *, error: str) -> None:
    """Keep the partial answer, interrupted (Retry shows), with the text the relay had beyond the last save."""
    async with session_scope() as session:
        await chats.update_message(
            session=session, user_id=user_id, message_id=message_id, content=text, reasoning=think,
            status=MessageStatus.interrupted if text else MessageStatus.error, error=error,
        )  # fmt: skip
