"""A phone-sized touch screen: drawer instead of sidebar, nothing wider than the screen."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from .helpers import ask, body, chat_id, no_horizontal_overflow, open_app, sidebar_link, unique

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 3}

WIDE_REPLY = """Wide content {word}:

| column one | column two | column three | column four | column five | column six |
|---|---|---|---|---|---|
| a long cell value | another long cell value | yet another one | and more text | still more | last |

```python
result = some_function_with_a_long_name(argument_number_one, argument_number_two, argument_three, and_four)
```

https://example.com/a/very/long/path/that/does/not/break/easily/because/it/is/one/word/{word}"""


def test_phone_layout(open_page: Callable[..., Page]) -> None:
    page = open_page(**PHONE)
    open_app(page)
    expect(page.get_by_test_id("sidebar")).to_be_hidden()
    expect(page.get_by_test_id("open-drawer")).to_be_visible()
    no_horizontal_overflow(page)

    word = unique("phone")
    long_word = "unbroken" * 12
    answer = ask(page, f"{word} {long_word} [[reply={WIDE_REPLY.format(word=word)}]] [[rate=400]]")
    expect(body(answer).locator("table")).to_be_visible()
    expect(body(answer).locator("pre")).to_be_visible()
    cid = chat_id(page)
    no_horizontal_overflow(page)
    box = page.get_by_test_id("composer").bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box

    page.get_by_test_id("open-drawer").tap()
    drawer = page.get_by_test_id("drawer")
    expect(drawer).to_be_visible()
    link = sidebar_link(page, cid, where="drawer")
    expect(link).to_be_visible()
    expect(link).to_contain_text(word)
    expect(drawer.get_by_test_id("new-chat")).to_be_visible()
    no_horizontal_overflow(page)

    # Starting a new chat from the drawer closes it; opening the old chat from the drawer works too.
    drawer.get_by_test_id("new-chat").tap()
    expect(drawer).to_be_hidden()
    expect(page.get_by_test_id("user-message")).to_have_count(0)
    page.get_by_test_id("open-drawer").tap()
    sidebar_link(page, cid, where="drawer").tap()
    expect(page.get_by_test_id("drawer")).to_be_hidden()
    expect(page.get_by_test_id("user-message")).to_contain_text(word)
    expect(page.get_by_test_id("chat-title")).to_contain_text(word)
    no_horizontal_overflow(page)
