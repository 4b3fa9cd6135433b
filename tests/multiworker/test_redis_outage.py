"""Redis going away mid-run: tabs keep chatting on every worker; when it is back it is used again (issue #4)."""

from __future__ import annotations

import asyncio
import os
import signal

from bench.ws_client import CHAT, Tab
from rubin_app.services.sessions import hash_token
from rubin_app.state.socket import tab_key
from tests.sealed import open_tab_state

from .helpers import (
    WORKERS,
    Cluster,
    chat,
    close_all,
    conversation_of,
    expected,
    open_tab,
    run,
    tabs_on_every_worker,
    unique,
    until,
)


async def ask_and_check(app: Cluster, tab: Tab, conversation: str | None = None, history: int = 0) -> str:
    """Chat once: the answer arrives whole and is saved, in the tab's conversation when one is given.

    Returns the conversation id; `history` is how many messages it held before.
    """
    question = f"{unique('q')} [[tokens=30]]"
    assert await chat(tab, question) == expected(question)
    cid = conversation or conversation_of(tab)
    saved = app.exchanges(cid)
    assert len(saved) == history + 2, f"the message went to another conversation than {cid}: {saved}"
    assert saved[-2:] == [("user", question, "complete"), ("assistant", expected(question), "complete")]
    return cid


def in_redis(app: Cluster, tab: Tab) -> bool:
    """Whether Reflex keeps the tab's state and its socket record in Redis (under its session-bound key)."""
    key = tab_key(tab.token, hash_token(tab.cookie))
    return bool(app.redis_keys(f"{key}_*")) and bool(app.redis_keys(f"*socket_record_{key}"))


def cache_keys(app: Cluster) -> int:
    """How many answers the response cache holds."""
    return len(app.redis_keys("rubin:cache:v1:*"))


async def ask_twice_in_new_chats(app: Cluster, cookie: str, redis_up: bool) -> int:
    """The same question in two new conversations; returns how many requests reached the stand-in."""
    question = f"{unique('cached')} [[tokens=25]]"
    before, cached_before = app.standin.requests, cache_keys(app) if redis_up else 0
    for attempt in range(2):
        tab = await open_tab(app, cookie)
        try:
            assert await chat(tab, question) == expected(question)
        finally:
            await tab.close()
        if attempt == 0 and redis_up:  # the answer is stored once it ended: wait for it before asking again
            await until(lambda: cache_keys(app) > cached_before, what="the answer in the response cache")
    return app.standin.requests - before


async def check_log(app: Cluster, since: int) -> None:
    """One warning each way per worker that noticed the outage, and nothing secret."""

    def counts() -> tuple[int, int]:
        log = app.log(since)
        return log.count("Redis unreachable ("), log.count("Redis is back: Reflex state")

    await until(lambda: counts()[0] == counts()[1], 10, "a 'Redis is back' warning for each 'unreachable' one")
    away, back = counts()
    assert 1 <= away <= WORKERS and back == away, app.log(since)[-4000:]
    assert "redis://" not in app.log(since)


def test_redis_stopped_mid_answer_and_restarted_empty(app: Cluster) -> None:
    async def scenario() -> None:
        cookies: list[str] = []

        def cookie_for(i: int) -> str:
            cookies.append(app.new_user(f"steady{i}x")[1])
            return cookies[-1]

        tabs = await tabs_on_every_worker(app, cookie_for)
        extra: list[Tab] = []
        try:
            conversations = {pid: await ask_and_check(app, tab) for pid, tab in tabs.items()}
            history = dict.fromkeys(tabs, 2)
            assert all(in_redis(app, tab) for tab in tabs.values()), "Reflex does not keep the tabs in Redis"
            mark = app.log_size()

            # ---- Redis goes away while an answer streams -------------------------------------------------
            streaming_pid, streaming_tab = next(iter(tabs.items()))
            question = f"{unique('midway')} [[tokens=90]] [[rate=30]]"  # three seconds
            await streaming_tab.send(question)
            await until(lambda: len(streaming_tab.pieces) >= 3, what="the answer to be streaming")
            app.redis.stop()
            assert await streaming_tab.wait_done(30), "the answer streaming when Redis went away never ended"
            assert streaming_tab.text() == expected(question)
            assert app.exchanges(conversations[streaming_pid])[-2:] == [
                ("user", question, "complete"),
                ("assistant", expected(question), "complete"),
            ]
            history[streaming_pid] += 2
            health = await asyncio.to_thread(app.wait_health, "degraded")
            for answer in health.values():
                assert answer["redis"] == {"configured": True, "ok": False, "error": "ConnectionError"}, answer
                assert answer["localai"]["ok"] is True
            # Open tabs keep their state (same conversation) on every worker.
            for pid, tab in tabs.items():
                await ask_and_check(app, tab, conversations[pid], history=history[pid])
                history[pid] += 2
            # A new user signs up and chats in a new tab; an existing user opens a new tab too.
            _, newcomer = await asyncio.to_thread(app.new_user, "during")
            extra.append(await open_tab(app, newcomer))
            newcomer_chat = await ask_and_check(app, extra[-1])
            extra.append(await open_tab(app, cookies[0]))
            await ask_and_check(app, extra[-1])
            # No response cache while Redis is away: the same question twice is asked twice.
            assert await ask_twice_in_new_chats(app, newcomer, redis_up=False) == 2

            # ---- Redis is back (a fresh, empty server on the same port) ------------------------------
            app.redis.start()
            health = await asyncio.to_thread(app.wait_health, "ok")
            assert all(answer["redis"] == {"configured": True, "ok": True} for answer in health.values()), health
            # Without any new event, the tabs' states and socket links are written back to the empty Redis.
            survivors = [*tabs.values(), *extra]
            await until(lambda: all(in_redis(app, tab) for tab in survivors), 15, "the tabs to be back in Redis")
            for pid, tab in tabs.items():
                await ask_and_check(app, tab, conversations[pid], history=history[pid])
            await ask_and_check(app, extra[0], newcomer_chat, history=2)
            extra.append(await open_tab(app, newcomer))
            await ask_and_check(app, extra[-1])
            assert in_redis(app, extra[-1])
            # The response cache is used again: the second identical question is answered from it.
            assert await ask_twice_in_new_chats(app, newcomer, redis_up=True) == 1
            stats = await asyncio.to_thread(app.health_by_worker, as_admin=True)
            assert all(answer["cache"]["hits"] >= 1 for answer in stats.values()), stats
            await check_log(app, mark)
        finally:
            await close_all([*tabs.values(), *extra])

    run(scenario(), timeout=300)


def test_redis_that_stops_answering_is_bypassed_and_gets_the_newer_states_back(app: Cluster) -> None:
    """SIGSTOP: connections stay open but nothing answers (a partition, a stuck server); its data survives."""

    def saved_chat_state(tab: Tab) -> bytes:
        """The chat text of the tab's state as Redis holds it (sealed there: opened with the app's key file)."""
        raw = app.redis_get(f"{tab_key(tab.token, hash_token(tab.cookie))}_{CHAT}") or b""
        return open_tab_state(app.db_path.parent / "data" / "encryption.key", CHAT, raw)

    async def scenario() -> None:
        tabs = await tabs_on_every_worker(app, lambda i: app.new_user(f"frozen{i}x")[1])
        frozen = False
        try:
            conversations = {pid: await ask_and_check(app, tab) for pid, tab in tabs.items()}
            mark = app.log_size()
            assert app.redis.proc is not None
            os.kill(app.redis.proc.pid, signal.SIGSTOP)
            frozen = True
            health = await asyncio.to_thread(app.wait_health, "degraded")
            assert all(answer["redis"]["ok"] is False and answer["redis"]["error"] for answer in health.values())
            asked: dict[int, str] = {}
            for pid, tab in tabs.items():
                await ask_and_check(app, tab, conversations[pid], history=2)
                asked[pid] = app.exchanges(conversations[pid])[-2][1]
            _, newcomer = await asyncio.to_thread(app.new_user, "frozen")
            late = await open_tab(app, newcomer)
            try:
                await ask_and_check(app, late)
            finally:
                await late.close()
            os.kill(app.redis.proc.pid, signal.SIGCONT)
            frozen = False

            await asyncio.to_thread(app.wait_health, "ok")
            # Redis kept the states from before; those changed meanwhile are written back over them.
            await until(
                lambda: all(asked[pid].encode() in saved_chat_state(tab) for pid, tab in tabs.items()),
                15,
                "the states changed during the outage to be written back",
            )
            for pid, tab in tabs.items():  # ... sealed: no chat text in clear in Redis
                raw = app.redis_get(f"{tab_key(tab.token, hash_token(tab.cookie))}_{CHAT}") or b""
                assert raw and asked[pid].encode() not in raw
            for pid, tab in tabs.items():
                await ask_and_check(app, tab, conversations[pid], history=4)
                assert in_redis(app, tab)
            await check_log(app, mark)
        finally:
            if frozen:
                os.kill(app.redis.proc.pid, signal.SIGCONT)
            await close_all(list(tabs.values()))

    run(scenario(), timeout=300)
