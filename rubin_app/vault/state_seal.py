"""Tab states at rest: the chat state's content vars (messages, titles, drafts) are pickled and sealed with
the vault's Redis key before Reflex writes the state to Redis (or to DATA_DIR/.states on one worker)."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable
from typing import Any

from rubin_app.vault.sealing import UnreadableValue
from rubin_app.vault.service import get_vault

log = logging.getLogger(__name__)
SEALED_KEY = "_rubin_sealed"


def seal_state(name: str, state: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """A copy of a state's pickled dict with `fields` replaced by one sealed blob."""
    vault = get_vault()
    if not vault.enabled:
        return state
    out = dict(state)  # never the live instance dict
    content = {f: out.pop(f) for f in fields if f in out}
    if content:
        out[SEALED_KEY] = vault.redis.seal("state:" + name, pickle.dumps(content).hex())
    return out


def open_state(name: str, state: dict[str, Any]) -> dict[str, Any]:
    """The dict back with its content; a blob that does not open (a retired key) leaves the defaults, which
    the page reloads from the database."""
    blob = state.pop(SEALED_KEY, None)
    if blob is None:
        return state
    try:
        state.update(pickle.loads(bytes.fromhex(get_vault().redis.open("state:" + name, blob))))
    except (UnreadableValue, ValueError) as exc:
        log.warning("a stored tab state of %s did not decrypt (%s): it starts empty", name, type(exc).__name__)
    return state
