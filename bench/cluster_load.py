"""Users chatting through the load balancer while faults happen: what each of them saw, and what was saved.

A user is a headless tab (bench.ws_client.Tab) in one conversation, sending a question as soon as the last answer
ended. When its websocket breaks (its instance died or stopped, haproxy reloaded) it reconnects the way a reloaded
page does: the same tab token, `/c/<conversation>`, which re-attaches to a live answer (the text so far, then the
rest). When it is shown an error it sends again; when an answer ends short of the stand-in's full text it presses
Retry. Afterwards `verify` reads the database: every question once, its answer saved whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.ws_client import CHAT, Tab
from tests.fakes.localai_standin import reply_to
from tests.multiworker.helpers import conversation_of, hydrated

if TYPE_CHECKING:
    from bench.cluster import Cluster

STALL_S = 1.0  # a gap between two pieces of an answer longer than this is a stall a user notices
ATTEMPTS = 4  # sends + Retry presses per question before the user gives up
# A re-attached tab whose answer ended this soon after it showed the text so far had no rest to follow.
REST_AT_ONCE_S = 0.5


expected = reply_to  # the whole answer the stand-in gives to a question


@dataclass
class Exchange:
    """One question: when it was sent, when its pieces arrived (over every connection), how it ended."""

    question: str
    sent: float
    arrivals: list[float] = field(default_factory=list)
    ended: float = 0.0
    seen: str = ""  # what the user's tab showed streaming (after a reconnect: the text so far, then the rest)
    attempts: int = 0  # requests made for it: sends and Retry presses
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    cut_complete: list[int] = field(default_factory=list)  # lengths of answers saved "complete" but short
    followed_live: bool | None = None  # after a reconnect: whether the rest arrived as it was written
    reattached_at: float = 0.0  # when the reopened page was seen following the answer
    live_detail: str = ""  # why a re-attached tab did not count as followed live
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # its send key (the page's, assets/stream.js)
    troubles: list[float] = field(default_factory=list)  # when the user met an error, a reconnect or a Retry

    @property
    def whole(self) -> bool:
        return self.ended > 0 and self.seen == expected(self.question)

    def gaps(self) -> list[tuple[float, float]]:
        """(end time, length) of each wait the user had: send to first piece, between pieces, last piece to end."""
        marks = sorted([self.sent, *self.arrivals, *([self.ended] if self.ended else [])])
        return [(b, b - a) for a, b in itertools.pairwise(marks)]

    def stall(self) -> float:
        return max((g for _, g in self.gaps()), default=0.0)


class ChatUser:
    """One signed-in user with one tab, chatting in one conversation."""

    def __init__(self, cluster: Cluster, email: str, cookie: str, tokens: int = 40) -> None:
        self.cluster, self.email, self.cookie, self.tokens = cluster, email, cookie, tokens
        self.url = cluster.url  # the load balancer (a benchmark may point users at one instance)
        self.tab: Tab | None = None
        self.token = str(uuid.uuid4())  # kept across reconnects, as a browser tab keeps it
        self.conversation = ""
        self.exchanges: list[Exchange] = []

    async def connect(self, timeout: float = 60.0) -> Tab:
        """Open the tab (again) on its conversation, retrying while nothing answers."""
        path = f"/c/{self.conversation}" if self.conversation else "/"
        deadline = time.monotonic() + timeout
        carried = self.tab.unacked if self.tab is not None else None  # the page keeps it across the reconnect
        while True:
            tab = Tab(self.url, self.cookie, token=self.token, unacked=dict(carried) if carried else None)
            try:
                await asyncio.wait_for(tab.open(path), 10)
                await _until(lambda t=tab: hydrated(t) or _dead(t), 10)
                if hydrated(tab):
                    self.tab = tab
                    return tab
            except (OSError, TimeoutError, Exception):  # refused, reset, handshake cut: try again
                pass
            with contextlib.suppress(Exception):
                await tab.close()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.email} could not reconnect in {timeout} s")
            await asyncio.sleep(0.3)

    async def ask(self, question: str, timeout: float = 90.0) -> Exchange:
        """Send a question and follow its answer to the end, reconnecting and retrying as a user would."""
        ex = Exchange(question, time.perf_counter())
        self.exchanges.append(ex)
        deadline = time.monotonic() + timeout
        action = "send"
        while ex.attempts < ATTEMPTS and time.monotonic() < deadline:
            ex.attempts += 1
            ex.seen, ex.arrivals = "", []  # what this attempt shows (the wait since the first send still counts)
            await self._act(ex, action)
            await self._follow(ex, deadline)
            if ex.whole:
                return ex
            ex.troubles.append(time.perf_counter())
            if ex.ended:
                ex.errors.append(f"attempt {ex.attempts}: ended short ({len(ex.seen)} of {len(expected(question))})")
            action = "regenerate" if question in dict(answers_by_question(await self._rows())) else "send"
            ex.ended = 0.0
            await asyncio.sleep(1.0)
        return ex

    async def _act(self, ex: Exchange, action: str) -> None:
        for _ in range(3):
            tab = self.tab if self.tab is not None and not _dead(self.tab) else await self.connect()
            try:
                if action == "send":
                    await tab.send(ex.question, key=ex.key)
                else:
                    tab.pieces.clear()
                    tab._sent_at = len(tab.deltas)
                    await tab.emit(f"{CHAT}.regenerate", {})
                return
            except Exception:  # the socket broke before the event left: the browser queues and sends it again
                ex.reconnects += 1
                self.tab = None
        ex.errors.append("could not send")

    async def _follow(self, ex: Exchange, deadline: float) -> None:
        tab = self.tab
        assert tab is not None
        start = len(tab.pieces)
        while time.monotonic() < deadline:
            if errors := _errors_since_send(tab):
                ex.errors.append(f"shown: {errors[-1]}")
                ex.troubles.append(time.perf_counter())
                return
            if _ended(tab):
                self._collect(ex, tab, start)
                ex.ended = time.perf_counter()
                ex.seen = _shown_answer(tab) or ex.seen  # the finished exchange, as the page shows it
                if ex.reconnects:
                    # The re-attached page got more than the text so far; or what was left of the answer was
                    # written within a moment of re-attaching or of showing the text so far (nothing was there
                    # to arrive piece by piece).
                    now = time.perf_counter()
                    since = [now - t for t in (ex.reattached_at, tab.pieces[0][0] if tab.pieces else 0.0) if t]
                    ex.followed_live = len(tab.pieces) > 1 or any(s < REST_AT_ONCE_S for s in since)
                    if not ex.followed_live:
                        ex.live_detail = (f"{len(tab.pieces)} piece(s); ended {', '.join(f'{s:.2f}' for s in since)}"
                                          " s after re-attaching / the first piece")  # fmt: skip
                if not ex.whole:  # what the tab was told, and what the database held at that moment
                    text, status = await self._saved(ex.question)
                    if status == "complete" and text != expected(ex.question):
                        ex.cut_complete.append(len(text))  # saved as finished, but short: the user cannot tell
                    ids = [
                        d[CHAT]["streaming_id_rx_state_"]
                        for d in tab.deltas
                        if "streaming_id_rx_state_" in d.get(CHAT, {})
                    ]
                    ex.errors.append(f"tab ended after {ex.reconnects} reconnects (streaming_id {ids}, "
                                     f"{len(tab.pieces)} pieces); saved then: {status} {len(text)} chars")  # fmt: skip
                return
            if _dead(tab):
                self._collect(ex, tab, start)
                self.conversation = conversation_of(tab) or await asyncio.to_thread(
                    self.cluster.latest_conversation, self.email
                )
                ex.reconnects += 1
                ex.troubles.append(time.perf_counter())
                tab, start = await self.connect(), 0
                if not await self._reattached(tab, ex.question):
                    text, status = await self._saved(ex.question)  # it ended while the tab was away: in the history
                    ex.seen, ex.ended = text, time.perf_counter()
                    if not ex.whole:
                        ex.errors.append(
                            f"reopened after a reconnect: the answer is {status or 'not saved'}, {len(text)} chars"
                        )
                    return
                ex.seen = ""  # the re-attached page shows the text so far, then the rest
                ex.reattached_at = time.perf_counter()
                continue
            await asyncio.sleep(0.05)
        self._collect(ex, tab, start)

    async def _reattached(self, tab: Tab, question: str, timeout: float = 5.0) -> bool:
        """Whether the reopened page follows the answer live (it is still being written).

        What the page shows is the last `streaming_id` it was sent: the hydration first sends the one the tab's
        state had before the reconnect (maybe a pending -2, or an answer that has ended since), then the page's
        load says what it found. A page that opened on the finished answer did not re-attach. A page whose question
        the last socket took away sends it again (`Tab.resent`) and follows that answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if tab.resent:
                return True  # the reopened page sent the question again (its first send was lost): it follows that
            ids = [(i, d[CHAT]["streaming_id_rx_state_"]) for i, d in enumerate(tab.deltas)
                   if "streaming_id_rx_state_" in d.get(CHAT, {})]  # fmt: skip
            if ids and ids[-1][1] > 0:
                tab._sent_at = ids[-1][0] + 1  # its end is the next streaming_id 0
                return True
            if (await self._saved(question))[1] not in ("streaming", ""):
                return False  # ended meanwhile: the page shows it in the history
            # Not saved yet: the stopping worker may be saving it (it hands it over next); the page's watcher then
            # shows it being continued (watch.py). Never saved: after `timeout`, reported as lost by the caller.
            await asyncio.sleep(0.1)
        return False

    def _collect(self, ex: Exchange, tab: Tab, start: int) -> None:
        ex.arrivals += [t for t, _ in tab.pieces[start:]]
        ex.seen += "".join(p for _, p in tab.pieces[start:])
        self.conversation = conversation_of(tab) or self.conversation

    async def _rows(self, timeout: float = 60.0) -> list[tuple[str, str, str]]:
        """The user's saved messages (read in a thread); waits while the database is away (a restart)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await asyncio.to_thread(self.cluster.answers_of, self.email)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _saved(self, question: str) -> tuple[str, str]:
        """(text, status) of the question's saved answer; ("", "") when the question is not saved."""
        return dict(answers_by_question(await self._rows())).get(question, ("", ""))

    async def run(self, stop: asyncio.Event, pause: float = 0.5) -> None:
        """Chat until told to stop (the question under way is finished first)."""
        for n in itertools.count():
            if stop.is_set():
                return
            await self.ask(f"{uuid.uuid4().hex[:8]} q{n} [[tokens={self.tokens}]]")
            await asyncio.sleep(pause)

    async def close(self) -> None:
        if self.tab is not None:
            with contextlib.suppress(Exception):
                await self.tab.close()


def answers_by_question(rows: list[tuple[str, str, str]]) -> list[tuple[str, tuple[str, str]]]:
    """(question, (last answer text, its status)) for every user message, in order (duplicates repeat)."""
    out: list[tuple[str, tuple[str, str]]] = []
    for role, text, status in rows:
        if role == "user":
            out.append((text, ("", "")))
        elif out:
            out[-1] = (out[-1][0], (text, status))
    return out


@dataclass
class Verdict:
    """What the database says about the users' questions."""

    asked: int = 0
    saved_whole: int = 0
    lost: list[str] = field(default_factory=list)  # asked and started, answer not saved whole
    unsaved: list[str] = field(default_factory=list)  # never saved at all
    duplicated: list[str] = field(default_factory=list)


def verify(cluster: Cluster, users: list[ChatUser]) -> Verdict:
    """Every question a user sent: saved once, with its whole answer, complete."""
    verdict = Verdict()
    for user in users:
        saved = answers_by_question(cluster.answers_of(user.email))
        counts: dict[str, int] = {}
        for question, _ in saved:
            counts[question] = counts.get(question, 0) + 1
        last = dict(saved)
        for ex in user.exchanges:
            verdict.asked += 1
            if counts.get(ex.question, 0) > 1:
                verdict.duplicated.append(ex.question)
            if ex.question not in last:
                verdict.unsaved.append(ex.question)
            elif last[ex.question] == (expected(ex.question), "complete"):
                verdict.saved_whole += 1
            else:
                verdict.lost.append(f"{ex.question}: {last[ex.question][1]} {len(last[ex.question][0])} chars")
    return verdict


def _dead(tab: Tab) -> bool:
    reader = tab._reader
    if reader is None or not reader.done():
        return False
    if not reader.cancelled():
        reader.exception()  # retrieved: a broken socket is what this looks for
    return True


def _shown_answer(tab: Tab) -> str:
    """The last assistant message of the exchange the page shows finished (`tail`), "" when none."""
    for delta in reversed(tab.deltas[tab._sent_at :]):
        tail = delta.get(CHAT, {}).get("tail_rx_state_")
        if tail:
            answers = [m for m in tail if m.get("role") == "assistant"]
            if answers and answers[-1].get("kept"):  # the tab streamed it: the server left the text to the tab
                return tab.kept.get(int(answers[-1].get("id", 0)), "")
            return str(answers[-1].get("content", "")) if answers else ""
    return ""


def _errors_since_send(tab: Tab) -> list[str]:
    key = "draft_error_rx_state_"
    return [d[CHAT][key] for d in tab.deltas[tab._sent_at :] if d.get(CHAT, {}).get(key)]


def _ended(tab: Tab) -> bool:
    return any(d.get(CHAT, {}).get("streaming_id_rx_state_") == 0 for d in tab.deltas[tab._sent_at :])


async def _until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.05)
