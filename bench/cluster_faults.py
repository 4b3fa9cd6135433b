"""The faults of issue #14 against a running cluster, while users chat: inject, restore, and what users saw.

`run_fault(cluster, name)` signs up fresh users, lets them chat, injects the fault once answers are streaming,
keeps them chatting until things settle, then reads the database (bench/cluster_load.verify) and returns a
`FaultReport`: requests made and failed, answers lost, duplicates, the longest stall, time to recover.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from bench.cluster import PASSWORD, Cluster
from bench.cluster_load import STALL_S, ChatUser, Verdict, verify
from bench.harness import sign_in


class Prober:
    """GET /api/health through the load balancer every `interval` s: plain HTTP requests made and failed."""

    def __init__(self, url: str, interval: float = 0.2) -> None:
        self.url, self.interval = url, interval
        self.made = self.failed = 0
        self.failures: list[float] = []
        self.reasons: dict[str, int] = {}  # why requests failed: a status or an exception's name, and how often

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
                self.made += 1
                try:
                    status = (await client.get(self.url + "/api/health")).status_code
                    why = "" if status == 200 else f"HTTP {status}"
                except httpx.HTTPError as exc:
                    why = type(exc).__name__
                if why:
                    self.failed += 1
                    self.failures.append(time.perf_counter())
                    self.reasons[why] = self.reasons.get(why, 0) + 1
                await asyncio.sleep(self.interval)


def _kill_one(c: Cluster) -> Callable[[], None]:
    inst = c.instances[0]
    c.kill_instance(inst)

    def restore() -> None:
        c.start_instance(inst)
        c.wait_in_lb(inst)

    return restore


def _rolling(c: Cluster) -> Callable[[], None]:
    c.rolling_restart()
    return lambda: None


def _redis(c: Cluster) -> Callable[[], None]:
    c.redis.stop()
    time.sleep(2)
    c.redis.start()
    return lambda: None


def _postgres(c: Cluster) -> Callable[[], None]:
    assert c.postgres is not None
    c.postgres.stop("fast")
    time.sleep(3)
    c.postgres.start()
    return lambda: None


def _localai(c: Cluster) -> Callable[[], None]:
    c.standin.kill()
    time.sleep(2)
    c.standin.start()
    return lambda: None


def _lb_reload(c: Cluster) -> Callable[[], None]:
    c.lb.reload()
    return lambda: None


# name -> (what an operator does, the inject step returning its restore step)
FAULTS: dict[str, tuple[str, Callable[[Cluster], Callable[[], None]]]] = {
    "kill9": ("kill -9 one instance mid-answer (started again afterwards)", _kill_one),
    "rolling": ("rolling restart: SIGTERM, healthy, next", _rolling),
    "redis": ("Redis stopped and started again (empty)", _redis),
    "postgres": ("PostgreSQL stopped (fast) mid-answer, back after 3 s", _postgres),
    "localai": ("LocalAI killed (-9) mid-answer, back after 2 s", _localai),
    "lb_reload": ("haproxy soft reload (-sf)", _lb_reload),
}


@dataclass
class FaultReport:
    """What users met during one fault."""

    fault: str
    users: int
    questions: int = 0
    requests: int = 0  # sends and Retry presses
    failed: int = 0  # requests that did not bring the whole answer
    http_made: int = 0
    http_failed: int = 0
    lost: int = 0  # answers not saved whole in the end (or questions never saved)
    duplicated: int = 0
    stall: float = 0.0  # the longest wait a user had mid-answer (or from send to first piece)
    stalls_over_1s: int = 0
    recover: float = 0.0  # from the fault until the last trouble a user met
    fault_seconds: float = 0.0
    reconnects: int = 0
    reattached: int = 0  # exchanges whose tab reconnected and found the answer still being written
    not_live: list[str] = field(default_factory=list)  # ... of which the rest did not arrive as it was written
    verdict: Verdict = field(default_factory=Verdict)
    problems: list[str] = field(default_factory=list)

    def row(self) -> tuple[str, ...]:
        return (self.fault, str(self.questions), f"{self.lost}", f"{self.failed}/{self.requests}",
                f"{self.http_failed}/{self.http_made}", f"{self.duplicated}", f"{self.stall:.2f} s",
                f"{self.recover:.1f} s", str(self.reconnects))  # fmt: skip


def make_users(cluster: Cluster, n: int, tokens: int) -> list[ChatUser]:
    """`n` new accounts (signed up through the load balancer), each with one tab."""
    tag = uuid.uuid4().hex[:6]
    emails = [f"u{tag}{i}@cluster.example" for i in range(n)]
    with ThreadPoolExecutor(4) as pool:
        cookies = list(pool.map(lambda e: sign_in(cluster.url, e, PASSWORD, name="User"), emails))
    return [ChatUser(cluster, e, c, tokens) for e, c in zip(emails, cookies, strict=True)]


async def chat_through(
    cluster: Cluster, users: list[ChatUser], actions: list[tuple[float, Callable[[], object]]], settle: float
) -> tuple[Prober, list[tuple[float, float]]]:
    """Users chat; each action runs (in a thread) at its offset in seconds; `settle` s after the last, they stop.

    Returns the prober and (start, end) perf_counter times of each action."""
    stop = asyncio.Event()
    prober = Prober(cluster.url)
    for user in users:
        await user.connect()
    tasks = [asyncio.create_task(u.run(stop)) for u in users] + [asyncio.create_task(prober.run(stop))]
    t0, spans = time.perf_counter(), []
    try:
        for offset, action in actions:
            await asyncio.sleep(max(0.0, t0 + offset - time.perf_counter()))
            start = time.perf_counter()
            await asyncio.to_thread(action)
            spans.append((start, time.perf_counter()))
        await asyncio.sleep(settle)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 240)
        for user in users:
            await user.close()
    for task in tasks:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return prober, spans


def report(
    name: str, cluster: Cluster, users: list[ChatUser], prober: Prober, spans: list[tuple[float, float]]
) -> FaultReport:
    """Numbers for one fault (`spans`: when it was injected)."""
    rep = FaultReport(name, len(users), http_made=prober.made, http_failed=prober.failed)
    verdict = rep.verdict = verify(cluster, users)
    exchanges = [ex for u in users for ex in u.exchanges]
    cut = [ex for ex in exchanges if ex.cut_complete]  # a Retry mended them, but the user could not have known
    rep.lost = len(verdict.lost) + len(verdict.unsaved) + len(cut)
    rep.duplicated = len(verdict.duplicated)
    rep.questions, rep.requests = len(exchanges), sum(ex.attempts for ex in exchanges)
    rep.failed = sum(ex.attempts - (1 if ex.whole else 0) for ex in exchanges)
    rep.reconnects = sum(ex.reconnects for ex in exchanges)
    rep.reattached = sum(ex.followed_live is not None for ex in exchanges)
    rep.not_live = [f"{ex.question} ({ex.live_detail})" for ex in exchanges if ex.followed_live is False]
    gaps = [g for ex in exchanges for g in ex.gaps()]
    rep.stall = max((g for _, g in gaps), default=0.0)
    rep.stalls_over_1s = sum(g > STALL_S for _, g in gaps)
    if spans:
        start = spans[0][0]
        rep.fault_seconds = spans[-1][1] - start
        troubles = [t for ex in exchanges for t in ex.troubles] + [end for end, g in gaps if g > STALL_S]
        troubles += prober.failures
        rep.recover = max([t - start for t in troubles if t >= start] + [rep.fault_seconds])
    rep.problems = [f"{ex.question}: {'; '.join(ex.errors)}" for ex in exchanges if ex.errors or not ex.whole]
    rep.problems += [f"lost: {x}" for x in verdict.lost] + [f"never saved: {x}" for x in verdict.unsaved]
    rep.problems += [f"duplicated: {x}" for x in verdict.duplicated]
    rep.problems += [f"saved complete but short ({ex.cut_complete} chars): {ex.question}" for ex in cut]
    rep.problems += [f"HTTP failed: {why} x{n}" for why, n in prober.reasons.items()]
    return rep


def run_fault(cluster: Cluster, name: str, users: int = 8, tokens: int = 40, before: float = 2.0,
              settle: float = 8.0) -> FaultReport:  # fmt: skip
    """One fault while `users` chat (answers of `tokens` at the stand-in's rate): inject, restore, report."""
    chatting = make_users(cluster, users, tokens)
    restore: list[Callable[[], None]] = []

    def inject() -> None:
        restore.append(FAULTS[name][1](cluster))

    async def scenario() -> tuple[Prober, list[tuple[float, float]]]:
        return await chat_through(cluster, chatting, [(before, inject)], settle)

    try:
        prober, spans = asyncio.run(scenario())
    finally:
        for step in restore:
            step()
    return report(name, cluster, chatting, prober, spans)


REPORT_HEADER = ("fault", "questions", "answers lost", "requests failed", "HTTP failed", "duplicated",
                 "longest stall", "time to recover", "reconnects")  # fmt: skip
