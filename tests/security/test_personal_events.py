"""Issue #15: another user's memories, instructions and assistants through forged websocket events.

The attacker is a signed-in user who sends the account and assistants pages' events by hand with every id the
victim's rows may have (ids are small integers): nothing of the victim's reaches them, nothing changes.
"""

from __future__ import annotations

import asyncio
import uuid

from bench.ws_client import Tab
from tests.security.client import AUTH, open_tab, received, sign_up
from tests.security.conftest import Target

from .helpers import run

PERSONAL = f"{AUTH}.rubin_app___state___personal____personal_state"
ASSISTANTS = f"{AUTH}.rubin_app___state___assistants____assistants_state"
IDS = [str(i) for i in range(1, 21)]  # the victim's rows are among the first (a fresh instance)
PACE = 0.07  # under the websocket's 20 events/s per tab: none is held back or dropped


async def _victims_data(base: str, cookie: str, secret: str) -> None:
    tab = await open_tab(base, cookie, path="/account")
    await tab.emit(f"{PERSONAL}.add", {"form": {"text": f"memory {secret}"}})
    await tab.emit(f"{PERSONAL}.save_instructions", {"form": {"about": f"about {secret}", "style": ""}})
    await asyncio.sleep(1)
    await tab.close()
    tab = await open_tab(base, cookie, path="/assistants")
    await tab.emit(f"{ASSISTANTS}.open_editor", {"assistant_id": "new"})
    form = {"name": f"bot {secret}", "base_model": "standin-model", "system_prompt": f"prompt {secret}"}
    await tab.emit(f"{ASSISTANTS}.save", {"form": form})
    await asyncio.sleep(1)
    await tab.close()


async def _send(tab: Tab, handler: str, payload: dict[str, object]) -> None:
    await tab.emit(handler, payload)
    await asyncio.sleep(PACE)


async def _attack(base: str, cookie: str) -> str:
    seen = ""
    account = await open_tab(base, cookie, path="/account")
    for memory_id in IDS:
        await _send(account, f"{PERSONAL}.edit", {"memory_id": memory_id})
        await _send(account, f"{PERSONAL}.save_edit", {"form": {"text": "hijacked"}})
        await _send(account, f"{PERSONAL}.delete", {"memory_id": memory_id})
    await _send(account, f"{PERSONAL}.undo_delete", {})
    page = await open_tab(base, cookie, path="/assistants")
    for assistant_id in IDS:
        for handler, payload in (
            ("open_editor", {"assistant_id": assistant_id}),
            ("export", {"assistant_id": assistant_id}),
            ("set_shared", {"assistant_id": assistant_id, "shared": True}),
            ("delete", {"assistant_id": assistant_id}),
        ):
            await _send(page, f"{ASSISTANTS}.{handler}", payload)
    await asyncio.sleep(2)
    for tab in (account, page):
        seen += received(tab)
        await tab.close()
    return seen


async def _what_the_victim_sees(base: str, cookie: str) -> str:
    seen = ""
    for path in ("/account", "/assistants"):
        tab: Tab = await open_tab(base, cookie, path=path)
        await asyncio.sleep(1)
        seen += received(tab)
        await tab.close()
    return seen


def test_forged_events_reach_nothing_of_another_user(target: Target) -> None:
    victim, attacker = sign_up(target.base, "victim"), sign_up(target.base, "attacker")
    secret = f"kumquat-{uuid.uuid4().hex[:8]}"
    run(_victims_data(target.base, victim.cookie, secret))
    before = run(_what_the_victim_sees(target.base, victim.cookie))
    assert f"memory {secret}" in before and f"about {secret}" in before and f"bot {secret}" in before
    seen = run(_attack(target.base, attacker.cookie))
    assert secret not in seen
    after = run(_what_the_victim_sees(target.base, victim.cookie))
    assert f"memory {secret}" in after and f"bot {secret}" in after and "hijacked" not in after
