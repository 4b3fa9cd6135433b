"""Issue #11 findings 1, 4 and 6: a tab's state is bound to its sign-in, holds no cookie, and a
signed-out tab costs no disk and little memory.

The attacker has what a shared computer, a browser extension or a log leaks: a tab's client token
(Reflex keeps it in sessionStorage and puts it in the websocket URL).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
import time
import uuid
from pathlib import Path

from bench.ws_client import STATE, Tab
from rubin_app.services.sessions import hash_token
from rubin_app.state.socket import tab_key
from tests.security.client import ACCOUNT, open_tab, post_form, received, sign_in, sign_up
from tests.security.conftest import Target

from .helpers import run


async def _chat(base: str, cookie: str, secret: str) -> str:
    """A tab that asks a question and waits for the answer; returns the tab's client token."""
    tab = await open_tab(base, cookie)
    await tab.send(secret)
    assert await tab.wait_done(30), "the answer never finished"
    await asyncio.sleep(0.5)
    assert secret in received(tab)
    await tab.close()
    return tab.token


def test_a_closed_tabs_token_without_its_cookie_gets_a_fresh_state(target: Target) -> None:
    victim = sign_up(target.base, "victim")
    secret = f"bananas-{uuid.uuid4().hex[:8]}"

    async def attack() -> tuple[str, str]:
        token = await _chat(target.base, victim.cookie, secret)
        stranger = await open_tab(target.base, "", token=token)  # no cookie at all
        other = sign_up(target.base, "attacker")
        attacker = await open_tab(target.base, other.cookie, token=token)  # someone else's cookie
        seen = received(stranger), received(attacker)
        await stranger.close()
        await attacker.close()
        return seen

    for seen in run(attack()):
        assert victim.email not in seen
        assert secret not in seen


def test_the_owner_gets_their_tab_back_after_a_reload(target: Target) -> None:
    owner = sign_up(target.base, "owner")

    async def reload() -> str:
        tab = await open_tab(target.base, owner.cookie)
        token = tab.token
        await tab.close()
        again = await open_tab(target.base, owner.cookie, token=token)
        seen = received(again)
        await again.close()
        return seen

    assert owner.email in run(reload())


def test_sign_out_purges_the_tabs_state(target: Target) -> None:
    user = sign_up(target.base, "leaver")
    secret = f"cherries-{uuid.uuid4().hex[:8]}"

    async def scenario() -> str:
        token = await _chat(target.base, user.cookie, secret)
        response = post_form(target.base, "/auth/logout", user.cookie)
        assert response.status_code == 303
        # The same tab token with the dead cookie (a stale browser, a copied profile): nothing comes back.
        tab = await open_tab(target.base, user.cookie, token=token)
        seen = received(tab)
        await tab.close()
        return seen

    seen = run(scenario())
    assert user.email not in seen and secret not in seen


def test_sign_out_everywhere_purges_other_devices_tabs(target: Target) -> None:
    user = sign_up(target.base, "everywhere")
    phone = sign_in(target.base, user)
    secret = f"plums-{uuid.uuid4().hex[:8]}"

    async def scenario() -> str:
        token = await _chat(target.base, phone, secret)
        assert post_form(target.base, "/auth/logout-all", user.cookie).status_code == 303
        tab = await open_tab(target.base, phone, token=token)
        seen = received(tab)
        await tab.close()
        return seen

    seen = run(scenario())
    assert user.email not in seen and secret not in seen


def test_no_cookie_or_token_is_stored_in_tab_states(target: Target) -> None:
    if not target.local:
        return  # the server's files are not ours to read (RUBIN_TARGET_URL)
    user = sign_up(target.base, "stored")
    run(_chat(target.base, user.cookie, f"figs-{uuid.uuid4().hex[:8]}"))
    for _ in range(100):  # Reflex writes states to disk after a short debounce
        if target.states():
            break
        time.sleep(0.1)
    assert target.states(), "no tab state was stored at all (the check below would prove nothing)"
    for path in target.states():
        blob = path.read_bytes()
        assert user.cookie.encode() not in blob, f"{path.name} holds the session cookie"
        assert b"rubin_session" not in blob
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, "the states folder is readable by others"
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path.name} is readable by others"


def _state_files(target: Target, tab: Tab, session_hash: str) -> list[Path]:
    """The files the disk state manager would write for this tab (one per state that sent a delta)."""
    assert target.root is not None
    ident = tab_key(tab.token, session_hash)
    names = {STATE} | {name for delta in tab.deltas for name in delta}
    return [target.root / ".states" / f"{hashlib.md5(f'{ident}_{n}'.encode()).hexdigest()}.pkl" for n in names]


def test_signed_out_tabs_are_not_written_to_disk(target: Target) -> None:
    if not target.local:
        return  # disk use is not visible from outside (RUBIN_TARGET_URL)
    user = sign_up(target.base, "ondisk")

    async def many() -> tuple[Tab, list[Tab]]:
        signed_in = await open_tab(target.base, user.cookie)
        tabs = [await open_tab(target.base, "", path="/login") for _ in range(30)]
        for tab in [signed_in, *tabs]:
            await tab.close()
        await asyncio.sleep(3)  # Reflex writes states to disk after a short debounce
        return signed_in, tabs

    signed_in, tabs = run(many(), timeout=180)
    # The same computation finds the signed-in tab's files: the check below is not vacuous.
    assert any(p.exists() for p in _state_files(target, signed_in, hash_token(user.cookie)))
    written = [p for tab in tabs for p in _state_files(target, tab, "") if p.exists()]
    assert not written, f"{len(written)} state files were written for 30 signed-out tabs"


def test_the_hydrate_frame_of_a_signed_out_tab_names_nobody(target: Target) -> None:
    user = sign_up(target.base, "named")

    async def scenario() -> str:
        token = await _chat(target.base, user.cookie, f"kiwis-{uuid.uuid4().hex[:8]}")
        stranger = await open_tab(target.base, "", token=token, path="/login")
        first = json.dumps(stranger.deltas[:1])
        await stranger.close()
        return first

    assert user.email not in run(scenario())


def test_a_made_up_or_dead_cookie_binds_the_tab_to_nothing(target: Target) -> None:
    if not target.local:
        return  # disk use is not visible from outside (RUBIN_TARGET_URL)
    user = sign_up(target.base, "deadcookie")
    secret = f"dates-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[Tab, Tab, str, str]:
        token = await _chat(target.base, user.cookie, secret)
        made_up = await open_tab(target.base, "x" * 43, path="/login")  # looks like a cookie, names no session
        await made_up.close()
        assert post_form(target.base, "/auth/logout", user.cookie).status_code == 303
        await asyncio.sleep(4)  # the second purge pass
        dead = await open_tab(target.base, user.cookie, token=token)  # the signed-out cookie, the same tab
        await dead.close()
        await asyncio.sleep(3)  # Reflex writes states to disk after a short debounce
        return made_up, dead, token, received(dead)

    made_up, dead, _, seen = run(scenario())
    assert user.email not in seen and secret not in seen
    for tab, cookie in ((made_up, "x" * 43), (dead, user.cookie)):
        # Neither a state bound to the dead or made-up session (for the signed-out cookie: what the session's
        # tab kept, purged at sign-out) nor a signed-out tab's state is on disk.
        for session_hash in (hash_token(cookie), ""):
            written = [p for p in _state_files(target, tab, session_hash) if p.exists()]
            assert not written, f"{len(written)} state files on disk for a tab with a dead or made-up cookie"


def test_deleting_the_account_purges_its_tabs(target: Target) -> None:
    if not target.local:
        return  # the server's files are not ours to read (RUBIN_TARGET_URL)
    user = sign_up(target.base, "deleted")

    async def scenario() -> Tab:
        tab = await open_tab(target.base, user.cookie, path="/account")
        await asyncio.sleep(3)  # its state reaches the disk
        assert any(p.exists() for p in _state_files(target, tab, hash_token(user.cookie)))
        await tab.emit(f"{ACCOUNT}.delete_account", {"form": {"confirm": user.email}})
        await asyncio.sleep(5)  # deleted, then both purge passes
        await tab.close()
        return tab

    tab = run(scenario())
    assert not [p for p in _state_files(target, tab, hash_token(user.cookie)) if p.exists()]
