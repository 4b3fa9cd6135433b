"""One end-to-end chat against the real llama.cpp server with the bundled Gemma 3 270M model.

The app's production build runs from an isolated copy of the sources (its own .web), the engine
is the one scripts/run.sh starts when LOCALAI_URL is empty, and Chromium drives the page.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Browser, expect

from bench.harness import BENCH_EMAIL, app_env, free_port, isolated_copy, session_cookie, sign_in, start_app, stop_app

pytestmark = pytest.mark.llm
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "llm"
DATABASES: dict[str, Path] = {}  # the running app's database, by its URL


@pytest.fixture(scope="module")
def real_app(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Production build pointed at the real engine."""
    tmp = tmp_path_factory.mktemp("llm-app")
    root = isolated_copy(tmp / "src")
    port = free_port()
    env = app_env(engine, tmp / "llm.db", port, LLM_MAX_TOKENS="48", LLM_TEMPERATURE="0", TITLE_MODE="llm")
    proc = start_app(env, ARTIFACTS / "app.log", root=root)
    url = f"http://127.0.0.1:{port}"
    DATABASES[url] = tmp / "llm.db"
    yield url
    stop_app(proc)


@pytest.fixture(scope="module")
def api_key(real_app: str) -> str:
    """A key made by the operator command for the bench account of the real app."""
    sign_in(real_app)  # the account exists
    db = DATABASES[real_app]  # (pytest may start this module's app twice, around the browser-parametrized test)
    made = subprocess.run(
        [sys.executable, "-m", "rubin_app", "keys", "create", "--email", BENCH_EMAIL, "--name", "llm test"],
        cwd=Path(__file__).resolve().parents[2], env={**os.environ, "DATABASE_URL": f"sqlite:///{db}"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    key = made.stdout.strip()
    assert key.startswith("rk-") and "\n" not in key, (made.stdout, made.stderr)
    return key


def test_engine_speaks_openai(engine: str) -> None:
    models = httpx.get(f"{engine}/v1/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == ["gemma-3-270m"]


def test_chat_with_the_real_model(real_app: str, browser: Browser) -> None:
    context = browser.new_context()
    context.add_cookies([session_cookie(real_app, sign_in(real_app))])
    page = context.new_page()
    page.goto(real_app + "/")
    expect(page.get_by_test_id("model-select")).to_contain_text("gemma-3-270m", timeout=60_000)
    page.get_by_test_id("composer").fill("What is the capital of France? Answer in one sentence.")
    page.get_by_test_id("composer").press("Enter")
    answer = page.get_by_test_id("assistant-message").last
    expect(answer).to_have_attribute("data-status", "complete", timeout=120_000)
    text = answer.inner_text().strip()
    page.screenshot(path=str(ARTIFACTS / "real-model-chat.png"))
    assert len(text.split()) >= 2, f"the model said too little: {text!r}"
    assert page.url.rsplit("/c/", 1)[-1], "the chat got an address"
    # The answer was saved: it is still there after a reload.
    page.reload()
    expect(page.get_by_test_id("assistant-message").last).to_have_attribute("data-status", "complete")
    assert page.get_by_test_id("assistant-message").last.inner_text().strip()[:20] == text[:20]
    context.close()


def test_the_openai_sdk_gets_answers_from_the_real_model(real_app: str, api_key: str) -> None:
    client = openai.OpenAI(base_url=f"{real_app}/v1", api_key=api_key, max_retries=0, timeout=120)
    try:
        assert [m.id for m in client.models.list()] == ["gemma-3-270m"]
        question = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
        reply = client.chat.completions.create(model="gemma-3-270m", messages=question, max_tokens=32)  # type: ignore[arg-type]
        assert len((reply.choices[0].message.content or "").split()) >= 2, reply
        assert reply.usage is not None and reply.usage.prompt_tokens > 5 and reply.usage.completion_tokens > 0
        chunks = list(
            client.chat.completions.create(
                model="gemma-3-270m",
                messages=question,
                max_tokens=32,
                stream=True,  # type: ignore[arg-type]
                stream_options={"include_usage": True},
            )
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert len(streamed.split()) >= 2 and chunks[-1].usage is not None
    finally:
        client.close()
