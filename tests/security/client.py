"""The attacker's tools: throwaway accounts over HTTP and a raw Socket.IO tab speaking Reflex's protocol."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import websockets

from bench.ws_client import NAMESPACE, STATE, Tab

AUTH = f"{STATE}.rubin_app___state___auth____auth_state"
CHAT = f"{AUTH}.rubin_app___state___chat____chat_state"
ACCOUNT = f"{AUTH}.rubin_app___pages___account____account_state"


@dataclass
class Account:
    """A local account the suite created, and one of its sessions."""

    email: str
    password: str
    cookie: str


def sign_up(base: str, prefix: str = "sec") -> Account:
    """A fresh local account (the sign-up form's POST, as a browser on the app's own origin sends it)."""
    email = f"{prefix}-{uuid.uuid4().hex[:10]}@security.example"
    password = f"pw-{uuid.uuid4().hex}"
    form = {"name": prefix, "email": email, "password": password, "password2": password}
    with httpx.Client(base_url=base, headers={"Origin": base}, timeout=30) as client:
        response = client.post("/auth/local/signup", data=form)
    cookie = response.cookies.get("rubin_session")
    assert response.status_code == 303 and cookie, f"sign-up failed: {response.headers.get('location')}"
    return Account(email, password, cookie)


def sign_in(base: str, account: Account) -> str:
    """A new session of the account; returns its cookie value."""
    with httpx.Client(base_url=base, headers={"Origin": base}, timeout=30) as client:
        response = client.post("/auth/local/login", data={"email": account.email, "password": account.password})
    cookie = response.cookies.get("rubin_session")
    assert response.status_code == 303 and cookie, f"sign-in failed: {response.headers.get('location')}"
    return cookie


def post_form(base: str, path: str, cookie: str, data: dict[str, str] | None = None) -> httpx.Response:
    """A same-origin form POST with a session cookie (sign-out and the like)."""
    with httpx.Client(base_url=base, headers={"Origin": base}, cookies={"rubin_session": cookie}, timeout=30) as c:
        return c.post(path, data=data or {})


async def connect_raw(base: str, *, token: str, cookie: str = "", origin: str | None = None) -> str:
    """Open the event websocket and ask to join Reflex's namespace; returns the server's answer frame.

    "40/_event,{...}" is accepted, "44/_event,{...}" refused; "closed" when the server hung up.
    """
    url = base.replace("http", "ws", 1) + f"/_event/?EIO=4&transport=websocket&token={token}"
    headers = {"Cookie": f"rubin_session={cookie}"} if cookie else {}
    if origin is not None:
        headers["Origin"] = origin
    try:
        async with websockets.connect(url, additional_headers=headers, open_timeout=15) as ws:
            await ws.recv()  # Engine.IO open
            await ws.send(f"40{NAMESPACE},")
            while True:
                frame = str(await asyncio.wait_for(ws.recv(), 15))
                if frame.startswith(("40", "44")):
                    return frame
    except (websockets.ConnectionClosed, websockets.InvalidStatus):
        return "closed"


async def open_tab(base: str, cookie: str, *, token: str | None = None, path: str = "/") -> Tab:
    """A headless tab (signed in with `cookie`, or not when it is empty), hydrated and loaded."""
    tab = Tab(base, cookie, **({"token": token} if token else {}))
    await tab.open(path)
    deadline = asyncio.get_running_loop().time() + 20
    while not any("is_hydrated" in json.dumps(d) for d in tab.deltas):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the tab never hydrated")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # on_load's events (chat list, model list) arrive after hydration
    return tab


def received(tab: Tab) -> str:
    """Everything the server sent the tab (deltas and streamed text) as one string to search."""
    return json.dumps(tab.deltas, ensure_ascii=False) + tab.text()


def emit_many(tab: Tab, name: str, payloads: list[dict[str, Any]]) -> list[str]:
    """Frames for many events, to send in one burst."""
    return [f"42{NAMESPACE}," + json.dumps(["event", {"name": name, "payload": p, "router_data": tab._router()}])
            for p in payloads]  # fmt: skip
