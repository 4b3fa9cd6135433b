"""The API tests' live app (uvicorn on loopback, a migrated SQLite copy): the proxies are put in front of it."""

from tests.api.conftest import migrated_template, start_app

__all__ = ["migrated_template", "start_app"]
