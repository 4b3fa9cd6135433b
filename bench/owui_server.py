"""Open WebUI 0.12.4 for the side-by-side bench: start it offline against the stand-in, sign up, seed a long chat.

Installed by bench/setup_owui.sh into .tools/owui-venv (never into .venv). Started the way ../shared/docs/toolchain.md
says (offline, no Ollama, the stand-in as its OpenAI connection, no title generation); follow-ups, tags,
autocomplete and arena models are off too, so every answer is one request to the stand-in, as for Rubin.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx

from bench.harness import BENCH_EMAIL, BENCH_PASSWORD, ROOT

VENV = ROOT / ".tools" / "owui-venv"
MODEL = "standin-model"
VERSION = "0.12.4"


def installed() -> bool:
    """Whether bench/setup_owui.sh has installed Open WebUI."""
    return (VENV / "bin" / "open-webui").is_file()


def owui_env(localai_url: str, data_dir: Path) -> dict[str, str]:
    """Environment of an offline Open WebUI run with its data in `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "WEBUI_"))}
    env.update(
        OFFLINE_MODE="true", HF_HUB_OFFLINE="1", ENABLE_OLLAMA_API="false",
        OPENAI_API_BASE_URL=f"{localai_url}/v1", OPENAI_API_KEY="x", RAG_EMBEDDING_MODEL="",
        ENABLE_TITLE_GENERATION="false", ENABLE_FOLLOW_UP_GENERATION="false", ENABLE_TAGS_GENERATION="false",
        ENABLE_AUTOCOMPLETE_GENERATION="false", ENABLE_EVALUATION_ARENA_MODELS="false",
        ENABLE_VERSION_UPDATE_CHECK="false", DEFAULT_MODELS=MODEL, GLOBAL_LOG_LEVEL="WARNING",
        WEBUI_SECRET_KEY="bench-secret-key-0123456789abcdef0123", DATA_DIR=str(data_dir),
        PATH=f"{VENV}/bin:{env.get('PATH', '')}", VIRTUAL_ENV=str(VENV),
    )  # fmt: skip
    env.pop("PYTHONPATH", None)
    return env


def sign_in(base: str) -> str:
    """A token for the bench account (the first sign-up becomes the admin)."""
    body = {"name": "Bench", "email": BENCH_EMAIL, "password": BENCH_PASSWORD}
    with httpx.Client(base_url=base, timeout=60) as client:
        response = client.post("/api/v1/auths/signup", json=body)
        if response.status_code != 200:
            response = client.post("/api/v1/auths/signin", json={"email": BENCH_EMAIL, "password": BENCH_PASSWORD})
        response.raise_for_status()
        token = str(response.json()["token"])
        # The admin's first page would open the changelog dialog over the composer: seen, and not shown again.
        ui = {"ui": {"showChangelog": False, "version": VERSION}}
        client.post("/api/v1/users/user/settings/update", json=ui, headers={"Authorization": f"Bearer {token}"})
        return token


def wait_models(base: str, token: str, timeout: float = 60.0) -> None:
    """Wait until Open WebUI lists the stand-in's model (it asks the connection at start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{base}/api/models", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        if response.status_code == 200 and any(m["id"] == MODEL for m in response.json().get("data", [])):
            return
        time.sleep(1)
    raise TimeoutError(f"Open WebUI at {base} does not list {MODEL}")


def seed_chat(base: str, token: str, texts: list[str], title: str) -> str:
    """A chat of alternating user/assistant messages (its whole history, as the page would save it); its id."""
    ids = [str(uuid.uuid4()) for _ in texts]
    now = int(time.time())
    messages = {}
    for i, (mid, text) in enumerate(zip(ids, texts, strict=True)):
        role = "user" if i % 2 == 0 else "assistant"
        messages[mid] = {
            "id": mid, "parentId": ids[i - 1] if i else None, "childrenIds": [ids[i + 1]] if i + 1 < len(ids) else [],
            "role": role, "content": text, "timestamp": now - len(ids) + i, "done": True,
            **({"models": [MODEL]} if role == "user" else {"model": MODEL, "modelName": MODEL, "modelIdx": 0}),
        }  # fmt: skip
    chat = {
        "title": title, "models": [MODEL], "params": {}, "files": [], "tags": [], "timestamp": now * 1000,
        "history": {"messages": messages, "currentId": ids[-1] if ids else None},
        "messages": [messages[m] for m in ids],
    }  # fmt: skip
    response = httpx.post(
        f"{base}/api/v1/chats/new", json={"chat": chat}, headers={"Authorization": f"Bearer {token}"}, timeout=300
    )
    response.raise_for_status()
    return str(response.json()["id"])


def token_script(token: str) -> str:
    """An init script that signs the page in (Open WebUI keeps its token in localStorage)."""
    return f"try {{ localStorage.setItem('token', {token!r}); }} catch (e) {{}}"
