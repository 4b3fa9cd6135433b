"""Knowledge bases in the browser: a base made on /knowledge, two documents dropped at once, each with its own row
and progress bar, followed live until both are ready; a file dropped again is refused by name."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from .helpers import Account, no_horizontal_overflow, unique
from .test_15_interface import _axe_violations

# Records every status a file row shows and whether a progress bar was drawn, however fast the job is.
WATCH = """() => {
  window.__kbSeen = {statuses: [], progress: false};
  const look = () => {
    document.querySelectorAll('[data-testid="kb-file-status"]').forEach(b => {
      const s = b.getAttribute('data-status');
      if (s && !window.__kbSeen.statuses.includes(s)) window.__kbSeen.statuses.push(s);
    });
    if (document.querySelector('[data-testid="kb-file-progress"]')) window.__kbSeen.progress = true;
  };
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true, attributes: true});
  look();
}"""


def _document(topic: str, paragraphs: int) -> bytes:
    return "\n\n".join(
        f"Section {i} of the {topic} manual. The {topic} needs care number {i}: check it, clean it, note it."
        for i in range(paragraphs)
    ).encode()


def test_two_files_dropped_at_once_show_progress_then_ready(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    page = open_page(make_account("kb"))
    page.goto("/")
    page.get_by_test_id("user-menu").click()
    page.get_by_test_id("menu-knowledge").click()
    expect(page.get_by_test_id("knowledge-page")).to_be_visible()
    expect(page.get_by_test_id("kb-none")).to_be_visible()

    name = unique("Manuals")
    page.get_by_test_id("kb-new-name").fill(name)
    page.get_by_test_id("kb-create").click()
    expect(page.get_by_test_id("kb-title")).to_have_text(name)
    expect(page.get_by_test_id("kb-base")).to_have_count(1)

    page.evaluate(WATCH)
    files = [
        {"name": "pump.md", "mimeType": "text/markdown", "buffer": _document("pump", 400)},
        {"name": "valve.txt", "mimeType": "text/plain", "buffer": _document("valve", 300)},
    ]
    page.get_by_test_id("kb-upload").locator("input[type=file]").set_input_files(files)

    rows = page.get_by_test_id("kb-file")
    expect(rows).to_have_count(2)
    expect(rows.get_by_test_id("kb-file-name")).to_have_text(["valve.txt", "pump.md"])
    statuses = rows.get_by_test_id("kb-file-status")
    expect(statuses.nth(0)).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(statuses.nth(1)).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(statuses).to_have_text(["Ready", "Ready"])
    expect(page.get_by_test_id("kb-file-progress")).to_have_count(0)  # done: no bar left
    seen = page.evaluate("window.__kbSeen")
    assert seen["progress"], "a progress bar was shown while the files were ingested"
    assert set(seen["statuses"]) & {"queued", "extracting", "embedding"}, seen

    page.get_by_test_id("kb-upload").locator("input[type=file]").set_input_files([files[1]])
    expect(page.get_by_test_id("kb-refused")).to_contain_text("valve.txt")
    expect(page.get_by_test_id("kb-refused")).to_contain_text("already in the knowledge base")
    expect(rows).to_have_count(2)

    page.reload()  # the state is the server's: after a reload the same files, still ready
    expect(page.get_by_test_id("kb-file-status")).to_have_text(["Ready", "Ready"])
    assert _axe_violations(page) == []
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    expect(page.get_by_test_id("kb-upload")).to_be_visible()
    no_horizontal_overflow(page)
