"""Answers from knowledge in the browser: a document uploaded on /knowledge, the base attached to a chat with the "#"
picker (typed "#" opens it), the answer's numbered sources under it, and a click on one opening its passage
highlighted between the text around it. The chat remembers its base after a reload."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from .helpers import Account, body, send, unique, wait_status

GUIDE = (
    "# Rubies\n\nRubies are red because of chromium in the corundum crystal. The deepest red stones are called "
    "pigeon blood.\n\n# Sapphires\n\nSapphires are blue because of iron and titanium. Yellow sapphires exist too.\n"
)


def _base_with_guide(page: Page, name: str) -> None:
    page.goto("/knowledge")
    expect(page.get_by_test_id("knowledge-page")).to_be_visible()
    page.get_by_test_id("kb-new-name").fill(name)
    page.get_by_test_id("kb-create").click()
    expect(page.get_by_test_id("kb-title")).to_have_text(name)
    files = [{"name": "gems.md", "mimeType": "text/markdown", "buffer": GUIDE.encode()}]
    page.get_by_test_id("kb-upload").locator("input[type=file]").set_input_files(files)
    expect(page.get_by_test_id("kb-file-status")).to_have_attribute("data-status", "ready", timeout=60_000)


def test_an_answer_from_a_base_shows_its_sources_and_opens_the_passage(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    page = open_page(make_account("cite"))
    name = unique("Gems")
    _base_with_guide(page, name)

    page.goto("/")
    composer = page.get_by_test_id("composer")
    composer.click()
    expect(page.get_by_test_id("knowledge-picker")).to_have_attribute("data-bases", "1")  # the page has loaded
    composer.press("#")  # "#" at the start of the box opens the picker instead of typing it
    option = page.get_by_test_id("kb-option").filter(has_text=name)
    expect(option).to_be_visible()
    expect(composer).to_have_value("")
    option.click()
    expect(page.get_by_test_id("kb-chip")).to_have_text([f"# {name}"])

    send(page, "Why are rubies red? [[echo_context]]")
    answer = wait_status(page, "complete")
    expect(body(answer)).to_contain_text("See [1]")
    sources = answer.get_by_test_id("source")
    expect(sources.first).to_contain_text("[1]")
    expect(sources.first).to_contain_text("gems.md — Rubies")
    expect(sources.first).to_have_attribute("data-cited", "true")

    sources.first.click()
    passage = page.get_by_test_id("passage")
    expect(passage).to_be_visible()
    expect(passage.get_by_test_id("passage-highlight")).to_contain_text("chromium in the corundum crystal")
    page.keyboard.press("Escape")
    expect(passage).to_have_count(0)

    page.reload()  # the chat keeps its base and the answer its sources
    expect(page.get_by_test_id("kb-chip")).to_have_text([f"# {name}"])
    expect(page.get_by_test_id("source").first).to_contain_text("gems.md")

    composer = page.get_by_test_id("composer")
    composer.fill("a #tag")  # "#" inside a word is just a character
    composer.press("End")
    composer.type("#")
    expect(composer).to_have_value("a #tag#")
