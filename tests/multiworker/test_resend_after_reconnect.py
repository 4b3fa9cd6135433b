"""A question the socket took away is sent again by the reopened page (its send key) and saved once — also in a chat
the tab's first question made, whose address the app gave the page after that first send (history.replaceState)."""

from __future__ import annotations

import contextlib
import uuid

from bench.ws_client import Tab

from .helpers import Cluster, chat, close_all, conversation_of, expected, hydrated, open_tab, run, unique, until


def test_a_question_lost_with_its_socket_in_a_new_chat_is_sent_again_and_saved_once(app: Cluster) -> None:
    _, cookie = app.new_user("resend")
    first, second = unique("first"), unique("second")

    async def scenario() -> tuple[str, int]:
        tab = await open_tab(app, cookie)  # at "/": the first question makes the chat
        assert await chat(tab, first) == expected(first)
        cid = conversation_of(tab)
        assert tab.location == f"/c/{cid}", "the app gives a new chat its address"
        await tab.ws.close()  # the socket goes before the next send leaves the page
        with contextlib.suppress(Exception):
            await tab.send(second, key=uuid.uuid4().hex)
        assert tab.unacked is not None and tab.unacked["cid"] == cid
        reopened = Tab(app.base, cookie, token=tab.token, unacked=dict(tab.unacked))
        await reopened.open(f"/c/{cid}")
        await until(lambda: hydrated(reopened), what="the chat to reopen")
        await until(lambda: reopened.resent, what="the lost question to be sent again")
        assert await reopened.wait_done(30), "the question sent again must be answered"
        await close_all([tab, reopened])
        return cid, reopened.resent

    cid, resent = run(scenario())
    assert resent == 1
    saved = app.exchanges(cid)
    assert [text for role, text, _ in saved if role == "user"] == [first, second]
    assert [(text, status) for role, text, status in saved if role == "assistant"][-1] == (expected(second), "complete")
