"""The REST app mounted at /api/v1, with its OpenAPI schema at /api/v1/openapi.json."""

from __future__ import annotations

from fastapi import FastAPI

from rubin_app.api.errors import install_handlers
from rubin_app.api.v1 import assistants, connections, conversations, keys, knowledge, webhooks

DESCRIPTION = """Rubin's own API: what the chat UI does, for programs. Authenticate with an API key
(`Authorization: Bearer rk-...`) made in the account page or with `python -m rubin_app keys create`.
Errors are OpenAI-shaped: `{"error": {"message", "type", "param", "code"}}`. The OpenAI-compatible
endpoints live under `/v1` (models, chat/completions, embeddings)."""


def build_rest_app() -> FastAPI:
    """/api/v1."""
    app = FastAPI(
        title="Rubin AI REST API", version="1", description=DESCRIPTION, docs_url=None, redoc_url=None,
        openapi_url="/openapi.json", servers=[{"url": "/api/v1"}],
    )  # fmt: skip
    install_handlers(app)
    app.include_router(conversations.router)
    app.include_router(keys.router)
    app.include_router(webhooks.router)
    app.include_router(knowledge.router)
    app.include_router(assistants.router)
    app.include_router(connections.router)
    return app
