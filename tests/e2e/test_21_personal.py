"""Assistants and memory in the browser: a user makes an assistant, finds it in the model picker, exports and
imports it; sets custom instructions and edits the memory list (add, duplicate refused, edit, delete and Undo,
the off switch) — and another user sees none of it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.fakes.localai_standin import StandIn

from .helpers import Account, ask, body, expected, open_app, open_user_menu, unique


def open_assistants(page: Page) -> Locator:
    open_app(page)
    open_user_menu(page).get_by_test_id("menu-assistants").click()
    expect(page).to_have_url(re.compile(r"/assistants/?$"))
    card = page.get_by_test_id("assistants-page")
    expect(card).to_be_visible()
    return card


def open_account(page: Page) -> Locator:
    open_app(page)
    open_user_menu(page).get_by_test_id("menu-account").click()
    expect(page).to_have_url(re.compile(r"/account/?$"))
    expect(page.get_by_test_id("signed-in-as")).to_contain_text("@")
    return page.get_by_test_id("account-page")


def test_make_an_assistant_pick_it_export_and_import(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    owner, other = make_account("asst"), make_account("asst-other")
    page = open_page(signed_in=owner)
    card = open_assistants(page)
    expect(page.get_by_test_id("assistants-none")).to_be_visible()
    page.get_by_test_id("assistant-new").click()
    editor = page.get_by_test_id("assistant-editor")
    editor.get_by_test_id("assistant-form-name").fill("Pirate")
    editor.get_by_test_id("assistant-form-prompt").fill("Talk like a pirate.")
    editor.get_by_label("Starter prompts (one per line)").fill("Tell me a sea story\n\nWhat is a doubloon?")
    editor.get_by_label("Temperature").fill("9")  # out of range: refused, nothing lost
    page.get_by_test_id("assistant-save").click()
    expect(page.get_by_test_id("assistants-error")).to_contain_text("temperature")
    expect(editor.get_by_test_id("assistant-form-prompt")).to_have_value("Talk like a pirate.")
    editor.get_by_label("Temperature").fill("0.4")
    page.get_by_test_id("assistant-save").click()
    row = card.get_by_test_id("assistant-row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("assistant-model")).to_have_text("asst:pirate · standin-model")
    expect(row.get_by_test_id("assistant-share")).to_have_count(0)  # sharing is for admins

    # Export downloads the versioned file.
    with page.expect_download() as download:
        row.get_by_test_id("assistant-export").click()
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported["format"] == "rubin.assistants" and exported["assistants"][0]["temperature"] == 0.4

    # The picker lists the assistant beside the models.
    open_app(page)
    picker = page.get_by_test_id("model-select")
    picker.click()
    expect(page.get_by_role("option", name="asst:pirate")).to_be_visible()
    expect(page.get_by_test_id("starter")).to_have_count(0)  # a plain model has no starters
    page.get_by_role("option", name="asst:pirate").click()
    expect(picker).to_contain_text("asst:pirate")
    starters = page.get_by_test_id("starter")
    expect(starters).to_have_text(["Tell me a sea story", "What is a doubloon?"])
    starters.first.click()
    expect(page.get_by_test_id("composer")).to_have_value("Tell me a sea story")

    # Another user: nothing of it; a broken file is refused with its reason; the exported one imports.
    second = open_page(signed_in=other)
    open_app(second)
    second.get_by_test_id("model-select").click()
    expect(second.get_by_role("option", name="asst:pirate")).to_have_count(0)
    second.keyboard.press("Escape")
    theirs = open_assistants(second)
    expect(second.get_by_test_id("assistants-none")).to_be_visible()
    box = second.get_by_test_id("assistant-import-text")
    box.fill('{"format": "rubin.assistants", "version": 7, "assistants": []}')
    second.get_by_test_id("assistant-import").click()
    expect(second.get_by_test_id("assistants-error")).to_contain_text("version 7")
    box.fill(json.dumps(exported))
    second.get_by_test_id("assistant-import").click()
    expect(second.get_by_test_id("assistants-notice")).to_have_text("Imported: 1.")
    expect(theirs.get_by_test_id("assistant-name")).to_have_text("Pirate")
    theirs.get_by_test_id("assistant-delete").click()
    expect(second.get_by_test_id("assistants-none")).to_be_visible()
    open_assistants(page)
    expect(page.get_by_test_id("assistant-row")).to_have_count(1)  # the owner's own is untouched


def test_instructions_and_the_memory_list(open_page: Callable[..., Page], make_account: Callable[..., Account]) -> None:
    user, other = make_account("memory"), make_account("memory-other")
    page = open_page(signed_in=user)
    open_account(page)
    expect(page.get_by_test_id("memory-none")).to_be_visible()  # the section's own load ran
    page.get_by_test_id("instructions-about").fill("I teach maths in Kazan.")
    page.get_by_test_id("instructions-style").fill("Short answers, please.")
    page.get_by_test_id("save-instructions").click()
    expect(page.get_by_test_id("instructions-notice")).to_have_text("Saved")

    memory = page.get_by_test_id("memory")
    new = page.get_by_test_id("memory-new")
    new.fill("Likes green tea")
    page.get_by_test_id("memory-add").click()
    expect(memory.get_by_test_id("memory-text")).to_have_text(["Likes green tea"])
    expect(new).to_have_value("")
    new.fill("likes green tea")
    page.get_by_test_id("memory-add").click()
    expect(page.get_by_test_id("memory-error")).to_have_text("Rubin already remembers this.")
    expect(new).to_have_value("likes green tea")  # the refused text stays in the box
    new.fill("Has a dog named Rex")
    page.get_by_test_id("memory-add").click()
    expect(memory.get_by_test_id("memory-text")).to_have_text(["Has a dog named Rex", "Likes green tea"])

    memory.get_by_test_id("memory-row").filter(has_text="green tea").get_by_test_id("memory-edit").click()
    page.get_by_test_id("memory-edit-text").fill("Likes oolong")
    page.get_by_test_id("memory-save").click()
    expect(memory.get_by_test_id("memory-text")).to_have_text(["Has a dog named Rex", "Likes oolong"])
    memory.get_by_test_id("memory-row").filter(has_text="Rex").get_by_test_id("memory-delete").click()
    expect(memory.get_by_test_id("memory-text")).to_have_text(["Likes oolong"])
    page.get_by_test_id("memory-undo").click()
    expect(memory.get_by_test_id("memory-text")).to_have_count(2)

    switch = page.get_by_test_id("memory-switch")
    expect(switch).to_have_attribute("data-state", "checked")
    switch.click()
    expect(switch).to_have_attribute("data-state", "unchecked")
    page.reload()
    expect(page.get_by_test_id("signed-in-as")).to_contain_text("@")
    expect(page.get_by_test_id("memory-switch")).to_have_attribute("data-state", "unchecked")
    expect(page.get_by_test_id("instructions-about")).to_have_value("I teach maths in Kazan.")
    expect(page.get_by_test_id("memory").get_by_test_id("memory-text")).to_have_count(2)

    second = open_page(signed_in=other)
    open_account(second)
    expect(second.get_by_test_id("memory-none")).to_be_visible()
    expect(second.get_by_test_id("instructions-about")).to_have_value("")


def test_an_assistant_answers_in_the_chat_with_the_users_memory(
    open_page: Callable[..., Page], make_account: Callable[..., Account], standin: StandIn
) -> None:
    """Needs the chat flow's wiring (chat_flow.check_model / _request -> assistants.chat.chat_setup)."""
    user = make_account("asst-chat")
    page = open_page(signed_in=user)
    open_account(page)
    expect(page.get_by_test_id("memory-none")).to_be_visible()
    page.get_by_test_id("memory-new").fill("Keeps a parrot called Polly")
    page.get_by_test_id("memory-add").click()
    expect(page.get_by_test_id("memory-text")).to_have_text(["Keeps a parrot called Polly"])
    open_assistants(page)
    page.get_by_test_id("assistant-new").click()
    page.get_by_test_id("assistant-form-name").fill("Pirate")
    page.get_by_test_id("assistant-form-prompt").fill("Talk like a pirate.")
    page.get_by_label("Temperature").fill("0.4")
    page.get_by_test_id("assistant-save").click()
    expect(page.get_by_test_id("assistant-row")).to_have_count(1)

    open_app(page)
    page.get_by_test_id("model-select").click()
    page.get_by_role("option", name="asst:pirate").click()
    question = f"How is the parrot {unique('q')}?"  # (not about the writer: no memory proposal follows)
    answer = ask(page, question)
    expect(body(answer)).to_have_text(expected(question))
    sent = standin.last_answer_json
    assert sent is not None and sent["model"] == "standin-model" and sent["temperature"] == 0.4
    system = sent["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Talk like a pirate.")
    assert "- Keeps a parrot called Polly" in system["content"]
    page.reload()  # the chat keeps its assistant
    expect(page.get_by_test_id("model-select")).to_contain_text("asst:pirate")
