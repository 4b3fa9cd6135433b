"""The real model continues an answer cut short (services/recovery.py, rubin_app/engine_server.py): the engine
goes on from a partial answer sent as the assistant's prefix, and an app killed (kill -9) mid-answer continues
the answer at its next start, in the same browser tab."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from bench.harness import app_env, free_port, isolated_copy, session_cookie, sign_in, start_app, stop_app
from tests.sealed import open_value

pytestmark = pytest.mark.llm
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "llm"
QUESTION = "List the planets of the solar system, one per line, with one fact about each."


def complete(engine: str, messages: list[dict[str, str]], max_tokens: int) -> str:
    """The engine's greedy answer."""
    body = {"model": "gemma-3-270m", "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    reply = httpx.post(f"{engine}/v1/chat/completions", json=body, timeout=120).json()
    return str(reply["choices"][0]["message"]["content"])


def test_the_engine_continues_a_partial_answer_instead_of_starting_over(engine: str) -> None:
    question = [{"role": "user", "content": QUESTION}]
    whole = complete(engine, question, 60)
    cut = whole.rfind(" ", 0, len(whole) // 2)  # a word boundary about half way
    assert cut > 10, whole
    partial = whole[:cut]
    rest = complete(engine, [*question, {"role": "assistant", "content": partial}], 30)
    assert rest.strip(), "the engine said nothing after the partial answer"
    # Greedy decoding: a new turn would open exactly as the whole answer did; a continuation goes on instead.
    assert not rest.lstrip().startswith(whole[:20].strip()), (partial, rest, whole)


@dataclass
class App:
    """A production build on the real engine, restartable on the same port and database."""

    env: dict[str, str]
    root: Path
    db: Path
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.env['FRONTEND_PORT']}"

    def start(self, log_name: str) -> None:
        self.proc = start_app(self.env, ARTIFACTS / log_name, root=self.root)

    def kill(self) -> None:
        """kill -9 the whole app: no shutdown runs."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def newest_answer_text(self) -> str:
        """The newest answer's saved text (opened with the app's key: it is sealed at rest)."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            row = conn.execute(
                "SELECT user_id, content FROM messages WHERE role = 'assistant' ORDER BY id DESC"
            ).fetchone()
            return open_value(conn, self.root / "data" / "encryption.key", row[0], "messages.content", row[1])

    def newest_answer(self) -> tuple[str, str]:
        """(status, error) of the newest answer, read from the database file."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            row = conn.execute(
                "SELECT status, error FROM messages WHERE role = 'assistant' ORDER BY id DESC"
            ).fetchone()
        return (row[0], row[1]) if row else ("", "")


@pytest.fixture
def app(engine: str, tmp_path: Path) -> Iterator[App]:
    """The app (started); stopped at the end."""
    env = app_env(engine, tmp_path / "recovery.db", free_port(), LLM_MAX_TOKENS="160", LLM_TEMPERATURE="0",
                  DB_FLUSH_SECONDS="0.2")  # fmt: skip
    made = App(env, isolated_copy(tmp_path / "src"), tmp_path / "recovery.db")
    made.start("recovery-app.log")
    yield made
    if made.proc is not None:
        stop_app(made.proc)


def test_an_app_killed_mid_answer_continues_it_at_the_next_start(app: App, browser: Browser) -> None:
    context = browser.new_context()
    context.add_cookies([session_cookie(app.base, sign_in(app.base))])
    page = context.new_page()
    page.goto(app.base + "/")
    expect(page.get_by_test_id("model-select")).to_contain_text("gemma-3-270m", timeout=60_000)
    page.get_by_test_id("composer").fill(QUESTION)
    page.get_by_test_id("composer").press("Enter")
    live = page.get_by_test_id("streaming-answer")
    expect(live).to_have_text(re.compile(r"\S[\s\S]{40,}"), timeout=120_000)  # some of the answer is there
    app.kill()
    assert app.newest_answer()[0] == "streaming"  # the process died: nobody ended the answer
    # What the last save before the kill holds (saved every 0.2 s; the page may have shown a few tokens more, which
    # the next start writes again from there, possibly otherwise).
    saved = app.newest_answer_text()
    app.start("recovery-app-2.log")
    try:
        answer = page.get_by_test_id("assistant-message").last  # the tab reconnects by itself
        expect(answer).to_have_attribute("data-status", "complete", timeout=120_000)
        text = answer.inner_text().strip()
        page.screenshot(path=str(ARTIFACTS / "recovered-answer.png"))
        final = app.newest_answer_text()  # the Markdown as saved (the page shows it rendered: lists, line breaks)
        assert final.startswith(saved) and len(final) > len(saved), (saved, final)  # continued from there, not anew
        assert final.split()[-1].strip("*_`.,:;!?") in text  # the page shows the answer to its end
        assert app.newest_answer() == ("complete", "")
    finally:
        context.close()
