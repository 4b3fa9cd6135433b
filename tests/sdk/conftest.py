"""Fixtures of the SDK tests: Rubin served for real (tests/api's `start_app`) in front of the LocalAI stand-in,
two users with a key each, and the SDK imported from the repository (sdk/python put first on sys.path, so
the tests check this checkout's SDK, never an installed copy).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SDK_PATH = str(Path(__file__).resolve().parents[2] / "sdk" / "python")
if SDK_PATH not in sys.path:
    sys.path.insert(0, SDK_PATH)

from rubin_client import RubinClient  # noqa: E402

from tests.api.conftest import LiveApp, migrated_template, start_app  # noqa: E402, F401
from tests.api.helpers import new_key, new_user  # noqa: E402
from tests.fakes.localai_standin import StandIn  # noqa: E402

ADMIN_SCOPES = "chat conversations:read conversations:write admin"


@dataclass
class Rubin:
    """A running Rubin with an admin (ann, the first account) and a user (bob), and an SDK client each."""

    app: LiveApp
    ann_id: int
    bob_id: int
    ann: RubinClient
    bob: RubinClient
    clients: list[RubinClient] = field(default_factory=list)

    def client(self, key: str, **options: Any) -> RubinClient:
        """A client of the app with `key` (closed after the test)."""
        made = RubinClient(self.app.url, key, timeout=20, **options)
        self.clients.append(made)
        return made


@pytest.fixture
def rubin_factory(start_app: Callable[..., LiveApp], standin: StandIn) -> Iterator[Callable[..., Rubin]]:  # noqa: F811
    """Factory: Rubin with these settings (see `start_app`), ann and bob signed up, a key each."""
    made: list[Rubin] = []

    def make(**settings: Any) -> Rubin:
        app = start_app(localai_url=standin.url, **settings)
        ann_id, bob_id = new_user(app, "ann@example.com"), new_user(app, "bob@example.com")
        ann = RubinClient(app.url, new_key(app, ann_id, ADMIN_SCOPES), timeout=20)
        bob = RubinClient(app.url, new_key(app, bob_id), timeout=20)
        rubin = Rubin(app=app, ann_id=ann_id, bob_id=bob_id, ann=ann, bob=bob, clients=[ann, bob])
        made.append(rubin)
        return rubin

    yield make
    for rubin in made:
        for client in rubin.clients:
            client.close()


@pytest.fixture
def rubin(rubin_factory: Callable[..., Rubin]) -> Rubin:
    """Rubin with its default settings."""
    return rubin_factory()
