"""Streaming an answer, and how answers render (Markdown, links, no HTML execution)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .helpers import (
    ask,
    body,
    chat_id,
    expected,
    last_answer,
    open_app,
    send,
    sidebar_link,
    unique,
    wait_partial,
    wait_status,
)


def test_answer_streams_in_then_completes(page: Page) -> None:
    word = unique("hello")
    question = f"{word} [[tokens=80]] [[rate=20]]"
    full = expected(question)
    open_app(page)
    send(page, question)

    # Text shows while the answer is still running (Stop offered, answer not finished)...
    partial = wait_partial(page, f"Echo: {word}")
    assert len(partial) < len(full)
    assert full.startswith(partial), f"streamed text is not a prefix of the answer: {partial!r}"
    expect(last_answer(page)).to_have_attribute("data-status", "streaming")
    # ... and keeps growing.
    wait_partial(page, f"Echo: {word}", min_chars=len(partial) + 20)

    answer = wait_status(page, "complete")
    expect(body(answer)).to_have_text(full)
    assert len(body(answer).inner_text().split()) == 80
    expect(page.get_by_test_id("stop")).to_have_count(0)
    expect(page.get_by_test_id("send")).to_be_visible()
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_contain_text(question)
    expect(page.get_by_test_id("composer")).to_have_value("")

    cid = chat_id(page)
    expect(sidebar_link(page, cid)).to_be_visible()
    expect(sidebar_link(page, cid)).to_have_text(f"{word} tokens=80 rate=20")
    expect(page.get_by_test_id("chat-title")).to_have_text(f"{word} tokens=80 rate=20")


MARKDOWN_REPLY = """Some **bold {word}** text.

| fruit | count |
|-------|-------|
| apple | 3     |

```python
def add(a, b):
    return a + b
```

See [the docs](https://example.com/docs).

<img src=x onerror="window.__pwned=1"> and <script>window.__pwned=1</script> stay text."""


def test_markdown_renders_safely(page: Page) -> None:
    word = unique("md")
    open_app(page)
    answer = ask(page, f"[[reply={MARKDOWN_REPLY.format(word=word)}]] [[rate=400]]")
    md = body(answer)

    expect(md.locator("strong")).to_have_text(f"bold {word}")
    expect(md.locator("table")).to_have_count(1)
    expect(md.locator("table th").first).to_have_text("fruit")
    expect(md.locator("table td").first).to_have_text("apple")
    code = md.locator("pre")
    expect(code).to_have_count(1)
    expect(code).to_contain_text("def add(a, b):")
    expect(code.locator("xpath=..").get_by_role("button", name="Copy code")).to_be_visible()

    link = md.get_by_role("link", name="the docs")
    expect(link).to_have_attribute("href", "https://example.com/docs")
    expect(link).to_have_attribute("target", "_blank")
    rel = link.get_attribute("rel") or ""
    assert "noopener" in rel.split(), rel

    # Raw HTML from the model is shown as text, never turned into elements or run.
    expect(md).to_contain_text('<img src=x onerror="window.__pwned=1">')
    expect(md).to_contain_text("<script>window.__pwned=1</script>")
    expect(answer.locator("img")).to_have_count(0)
    expect(answer.locator("script")).to_have_count(0)
    assert page.evaluate("() => window.__pwned") is None
    # The question (with the same HTML) is plain text too.
    expect(page.get_by_test_id("user-message").locator("img")).to_have_count(0)
    assert page.evaluate("() => window.__pwned") is None
