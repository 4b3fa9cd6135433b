"""A worker killed (kill -9) mid-answer: another worker continues the answer from where its text was, a tab on
another worker follows the rest live, the saved answer is whole, and the killed worker is started again."""

from __future__ import annotations

import os
import signal

from .helpers import Cluster, chat_var, close_all, expected, open_tab, run, unique, until


def test_a_worker_killed_mid_answer_its_answer_goes_on_in_another_worker(app: Cluster) -> None:
    email, cookie = app.new_user("killed")
    question = f"{unique('killed')} [[tokens=150]] [[rate=30]]"  # five seconds of streaming
    whole = expected(question)
    continuations_before = len([r for r in app.standin.records if r.prefix])

    async def scenario() -> None:
        first = await open_tab(app, cookie)
        origin = app.worker_of(first)  # the answer runs in the worker that received the message
        phones = []
        try:
            await first.send(question)
            cid, _mid = await until(lambda: app.live_answer(email), what="the answer to start")
            for _ in range(15):  # the same chat open on another device, served by another worker
                phone = await open_tab(app, cookie, f"/c/{cid}")
                phones.append(phone)
                if app.worker_of(phone) != origin:
                    break
            else:
                raise AssertionError(f"15 tabs all landed on the answering worker {origin}")
            await until(lambda: len(phone.pieces) >= 3, what="the phone to follow the answer")
            os.kill(origin, signal.SIGKILL)
            await until(lambda: chat_var(phone, "streaming_id")[-1] == 0, 40, "the end of the answer")
            assert phone.text() == whole, "the tab on another worker did not see one whole answer"
            assert app.exchanges(cid) == [("user", question, "complete"), ("assistant", whole, "complete")]
            continued = [r for r in app.standin.records if r.prefix][continuations_before:]
            assert len(continued) == 1 and whole.startswith(continued[0].prefix)  # asked once, from the partial
        finally:
            await close_all([first, *phones])

    run(scenario())
    app.wait_health("ok", timeout=30)  # the killed worker was started again: every worker answers
