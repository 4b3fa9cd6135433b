"""A developer's path on the production build: a key made in the account page, the official `openai` SDKs
(Python and the npm package) against /v1, usage shown back in the account page, the key revoked there."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import openai
from playwright.sync_api import Page, expect

from tests.fakes.localai_standin import StandIn, expected_reply

from .helpers import Account, open_app, open_user_menu

ROOT = Path(__file__).resolve().parents[2]
MODEL = "standin-model"


def _account_page(page: Page) -> None:
    open_app(page)
    open_user_menu(page).get_by_test_id("menu-account").click()
    expect(page).to_have_url(re.compile(r"/account/?$"))
    expect(page.get_by_test_id("api-keys")).to_be_visible()


def test_a_key_from_the_account_page_works_with_both_openai_sdks_until_revoked(
    open_page: Callable[..., Page], make_account: Callable[..., Account], standin: StandIn, base_url: str
) -> None:
    page = open_page(make_account("developer"))
    _account_page(page)
    page.get_by_test_id("key-name").fill("my script")
    page.get_by_test_id("create-key").click()
    shown = page.get_by_test_id("new-key")
    expect(shown).to_have_text(re.compile(r"^rk-"))
    key = shown.inner_text().strip()
    expect(page.get_by_test_id("key-row")).to_have_count(1)
    expect(page.get_by_test_id("key-row")).to_contain_text("my script")

    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30) as client:
        assert MODEL in [m.id for m in client.models.list()]
        reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello rubies"}])
        assert reply.choices[0].message.content == expected_reply([{"role": "user", "content": "Hello rubies"}])
        chunks = list(
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "stream please"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Echo: stream")
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 20

        node = subprocess.run(
            ["node", "example.mjs"], cwd=ROOT / "sdk" / "js", capture_output=True, text=True, timeout=60,
            env={**os.environ, "RUBIN_URL": base_url, "RUBIN_API_KEY": key, "RUBIN_MODEL": MODEL},
        )  # fmt: skip
        assert node.returncode == 0, node.stderr
        lines = [json.loads(line) for line in node.stdout.splitlines()]
        assert MODEL in lines[0]["models"]
        assert lines[1]["answer"].startswith("Echo: Say hello") and lines[1]["usage"]["completion_tokens"] == 20
        assert lines[2]["streamed"].startswith("Echo: Name three") and lines[2]["usage"]["completion_tokens"] == 20
        assert lines[3]["error"] == {"status": 404, "code": "model_not_found"}

        requests = page.get_by_test_id("usage-requests")
        for _ in range(30):  # usage is written in batches, off the answers' path: a second at most
            page.reload()
            expect(page.get_by_test_id("api-keys")).to_be_visible()
            if requests.count() and requests.first.inner_text() == "4":
                break
            page.wait_for_timeout(200)
        expect(page.get_by_test_id("usage-row")).to_contain_text(MODEL)
        expect(requests).to_have_text("4")  # 4 answers: 2 from Python, 2 from node
        expect(page.get_by_test_id("new-key")).to_have_count(0)  # shown once: gone after a reload
        docs = page.context.new_page()  # the interactive docs: the same key lists this user's conversations
        docs.goto(f"{base_url}/api/docs")
        expect(docs.locator("#api-docs[data-ready='1']")).to_be_attached()
        docs.locator("#api-key").fill(key)
        operation = docs.locator("details.op").filter(has_text="GET /conversations —").first
        operation.locator("summary").click()
        operation.get_by_role("button", name="Try it").click()
        expect(operation.locator(".output")).to_contain_text("200 OK")
        expect(operation.locator(".output")).to_contain_text('"data":[]')  # SDK calls save no conversation
        docs.close()
        page.get_by_test_id("revoke-key").click()
        expect(page.get_by_test_id("key-row")).to_contain_text("Revoked")
        try:
            client.models.list()
        except openai.AuthenticationError as exc:
            assert exc.status_code == 401
        else:
            raise AssertionError("a revoked key still works")


def test_an_admin_sees_everyones_keys_and_usage_and_revokes_a_key(
    open_page: Callable[..., Page], make_account: Callable[..., Account], admin_account: Account, base_url: str
) -> None:
    developer = make_account("keyholder")
    page = open_page(developer)
    _account_page(page)
    page.get_by_test_id("key-name").fill("build server")
    page.get_by_test_id("create-key").click()
    expect(page.get_by_test_id("new-key")).to_have_text(re.compile(r"^rk-"))
    key = page.get_by_test_id("new-key").inner_text().strip()
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30) as client:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "count me"}])
        admin = open_page(admin_account)
        admin.goto(f"{base_url}/admin")
        row = admin.get_by_test_id("admin-key-row").filter(has_text=developer.email)
        expect(row).to_contain_text("build server")
        expect(admin.get_by_test_id("admin-usage-row").filter(has_text=developer.email)).to_be_visible()
        row.get_by_test_id("admin-revoke-key").click()
        expect(row).to_contain_text("Revoked")
        try:
            client.models.list()
        except openai.AuthenticationError:
            pass
        else:
            raise AssertionError("a key revoked by an admin still works")
