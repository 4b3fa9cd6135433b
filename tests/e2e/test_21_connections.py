"""Model connections in Chromium (issue #15): an admin adds a cloud-style connection (its key write-only) and one
that is down; the picker groups the models by connection, marks the down one and badges a vision model; a chat
on the cloud model is answered by that server with its key; the key is in no page and no log line."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.fakes.localai_standin import StandIn, StandInConfig

from .conftest import ARTIFACTS, free_port
from .helpers import Account, ask, open_app, unique
from .test_20_groups import open_admin

CLOUD_KEY = "sk-proj-e2e-5d1c9b7a3f8e2d6c"


@pytest.fixture(scope="module")
def cloud() -> Iterator[StandIn]:
    """A cloud-style server: its own models and a bearer key."""
    server = StandIn(StandInConfig(models=["cloud-chat", "llava-cloud"], api_key=CLOUD_KEY, tokens=8)).start()
    try:
        yield server
    finally:
        server.stop()


def add_connection(page: Page, name: str, url: str, key: str = "", prefix: str = "") -> Locator:
    """Fill the new-connection form on the admin page; the new connection's card."""
    form = page.get_by_test_id("connection-new")
    form.get_by_test_id("connection-name").fill(name)
    form.get_by_test_id("connection-base_url").fill(url)
    form.get_by_test_id("connection-api_key").fill(key)
    form.get_by_test_id("connection-prefix").fill(prefix)
    form.get_by_test_id("connection-add").click()
    card = page.get_by_test_id("connection-card").filter(has=page.locator(f'input[value="{name}"]'))
    expect(card).to_have_count(1)
    return card


def test_an_admin_adds_connections_and_their_models_appear_in_the_picker(
    open_page: Callable[..., Page], admin_account: Account, cloud: StandIn
) -> None:
    admin = open_page(signed_in=admin_account)
    open_admin(admin)
    expect(admin.get_by_test_id("admin-connections")).to_be_visible()
    name, spare = unique("Cloud "), unique("Spare ")
    card = add_connection(admin, name, cloud.url + "/v1", key=CLOUD_KEY, prefix="cloud/")
    try:
        expect(card.get_by_test_id("connection-status")).to_have_text("reachable · 2 models")
        key_field = card.get_by_test_id("connection-api_key")
        expect(key_field).to_have_value("")  # write-only: never filled in again
        expect(key_field).to_have_attribute("placeholder", "Key set — type to replace")
        down = add_connection(admin, spare, f"http://127.0.0.1:{free_port()}")
        expect(down.get_by_test_id("connection-status")).to_contain_text("unreachable")
        expect(admin.get_by_test_id("audit-row").filter(has_text="connection_created").first).to_be_visible()
        assert CLOUD_KEY not in admin.content()

        # The picker: grouped by connection, the down one marked, the vision model badged.
        page = open_page(signed_in=admin_account)
        open_app(page)
        page.get_by_test_id("model-select").click()
        expect(page.get_by_role("option", name="cloud/cloud-chat")).to_be_visible()
        expect(page.get_by_role("option", name="cloud/llava-cloud")).to_contain_text("vision")
        expect(page.get_by_role("option", name="standin-model")).to_be_visible()
        expect(page.get_by_test_id("model-group-unreachable")).to_have_text(f"{spare} · unreachable")
        page.get_by_role("option", name="cloud/cloud-chat").click()
        expect(page.get_by_test_id("model-select")).to_have_text("cloud/cloud-chat")

        # A chat on the cloud model is answered by that server, with its key.
        cloud.reset()
        ask(page, "Hello through the cloud connection")
        assert [r.model for r in cloud.records if not r.title] == ["cloud-chat"]
        assert cloud.last_headers["authorization"] == f"Bearer {CLOUD_KEY}"
        assert CLOUD_KEY not in page.content()
    finally:
        for connection in (name, spare):
            card = admin.get_by_test_id("connection-card").filter(has=admin.locator(f'input[value="{connection}"]'))
            if card.count():
                card.get_by_test_id("connection-delete").click()
                expect(card).to_have_count(0)
    assert CLOUD_KEY not in (ARTIFACTS / "app-server.log").read_text(errors="replace")
