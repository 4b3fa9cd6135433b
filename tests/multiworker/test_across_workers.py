"""Three workers on one Redis: concurrent chats of different users, and a tab reloaded mid-answer."""

from __future__ import annotations

import asyncio

from .helpers import (
    Cluster,
    chat,
    chat_var,
    close_all,
    conversation_of,
    expected,
    open_tab,
    run,
    tabs_on_every_worker,
    unique,
    until,
)


def test_users_on_every_worker_chat_at_once_and_every_answer_arrives_whole_and_saved(app: Cluster) -> None:
    requests_before = app.standin.requests

    async def scenario() -> None:
        tabs = list((await tabs_on_every_worker(app, lambda i: app.new_user(f"conc{i}x")[1])).values())
        tabs += [await open_tab(app, app.new_user(f"more{i}x")[1]) for i in range(3)]
        try:
            questions = [f"{unique('together')} tab {i} [[tokens=80]] [[rate=40]]" for i in range(len(tabs))]
            answers = await asyncio.gather(*(chat(tab, q) for tab, q in zip(tabs, questions, strict=True)))
            for tab, question, answer in zip(tabs, questions, answers, strict=True):
                assert answer == expected(question), f"tab on worker {app.worker_of(tab)} got a partial answer"
                cid = conversation_of(tab)
                assert cid, "the tab was never told its new conversation"
                assert app.exchanges(cid) == [
                    ("user", question, "complete"),
                    ("assistant", expected(question), "complete"),
                ]
            # They really streamed at the same time: every stream started before any of them ended.
            firsts = [tab.pieces[0][0] for tab in tabs]
            lasts = [tab.pieces[-1][0] for tab in tabs]
            assert max(firsts) < min(lasts), "the answers were streamed one after another, not at once"
        finally:
            await close_all(tabs)

    run(scenario())
    assert app.standin.requests == requests_before + 6  # one request per question: no retry, no duplicate


def test_tab_reloaded_mid_answer_on_another_worker_receives_the_rest_live(app: Cluster) -> None:
    email, cookie = app.new_user("reload")
    question = f"{unique('reload')} [[tokens=150]] [[rate=30]]"  # five seconds of streaming
    whole = expected(question)

    async def scenario() -> None:
        first = await open_tab(app, cookie)
        origin = app.worker_of(first)
        reloads = []
        try:
            await first.send(question)
            cid, mid = await until(lambda: app.live_answer(email), what="the answer to start")
            await until(lambda: len(first.pieces) >= 5, what="the first pieces")
            await first.close()  # the page goes away: a reload opens /c/<id> on a new connection
            for _ in range(15):
                tab = await open_tab(app, cookie, f"/c/{cid}")
                reloads.append(tab)
                if app.worker_of(tab) != origin:
                    break
            else:
                raise AssertionError(f"15 reloads all landed on the first tab's worker {origin}")
            for tab in reloads:
                streaming = chat_var(tab, "streaming_id")
                assert mid in streaming, "the reloaded tab did not join the live answer"
                await until(lambda t=tab: chat_var(t, "streaming_id")[-1] == 0, 20, "the end of the answer")
                assert tab.text() == whole, f"reload on worker {app.worker_of(tab)} (first tab on {origin})"
                shown_at_load = tab.pieces[0][1]
                assert len(shown_at_load) < len(whole) and len(tab.pieces) > 1, "the rest did not arrive live"
            assert app.exchanges(cid) == [("user", question, "complete"), ("assistant", whole, "complete")]
        finally:
            await close_all([first, *reloads])

    run(scenario())
