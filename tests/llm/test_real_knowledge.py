"""Knowledge with the real bundled models: the bundled embedding server (all-MiniLM-L6-v2) embeds an uploaded
document and the question, the real Gemma 3 270M answers from the retrieved passage, and the browser shows the
answer with its numbered source — the default set-up of an instance that configures nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from bench.harness import app_env, free_port, isolated_copy, session_cookie, sign_in, start_app, stop_app

pytestmark = pytest.mark.llm
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "llm"
GUIDE = (
    "# The Zephyr pump\n\nThe Zephyr pump must be serviced every 400 hours of running. Its filter is replaced at "
    "each service.\n\n# Warranty\n\nThe warranty lasts three years from the date of purchase.\n"
)


@pytest.fixture(scope="module")
def knowledge_app(engine: str, embed_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Production build on the real engine and the bundled embedding server (EMBEDDING_MODEL left empty)."""
    tmp = tmp_path_factory.mktemp("llm-knowledge")
    root = isolated_copy(tmp / "src")
    port = free_port()
    embed_port = embed_server.rsplit(":", 1)[1]
    env = app_env(engine, tmp / "kb.db", port, LLM_MAX_TOKENS="48", LLM_TEMPERATURE="0", EMBEDDING_PORT=embed_port)
    proc = start_app(env, ARTIFACTS / "knowledge-app.log", root=root)
    yield f"http://127.0.0.1:{port}"
    stop_app(proc)


def test_the_real_models_answer_from_an_uploaded_document(knowledge_app: str, browser: Browser) -> None:
    context = browser.new_context()
    context.add_cookies([session_cookie(knowledge_app, sign_in(knowledge_app))])
    page = context.new_page()
    page.goto(knowledge_app + "/knowledge")
    page.get_by_test_id("kb-new-name").fill("Manuals")
    page.get_by_test_id("kb-create").click()
    files = [{"name": "zephyr.md", "mimeType": "text/markdown", "buffer": GUIDE.encode()}]
    page.get_by_test_id("kb-upload").locator("input[type=file]").set_input_files(files)
    expect(page.get_by_test_id("kb-file-status")).to_have_attribute("data-status", "ready", timeout=120_000)

    page.goto(knowledge_app + "/")
    page.get_by_test_id("knowledge-picker").click()
    page.get_by_test_id("kb-option").filter(has_text="Manuals").click()
    expect(page.get_by_test_id("kb-chip")).to_have_text(["# Manuals"])
    page.get_by_test_id("composer").fill("How often must the Zephyr pump be serviced?")
    page.get_by_test_id("composer").press("Enter")
    answer = page.get_by_test_id("assistant-message").last
    expect(answer).to_have_attribute("data-status", "complete", timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "real-model-knowledge.png"))
    source = answer.get_by_test_id("source").first
    expect(source).to_contain_text("zephyr.md")  # the passage the bundled embedder and full-text search found
    assert answer.inner_text().strip(), "the model answered nothing"
    source.click()
    expect(page.get_by_test_id("passage-highlight")).to_contain_text("every 400 hours")
    context.close()
