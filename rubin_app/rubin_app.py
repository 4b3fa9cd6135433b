"""The Reflex app: theme, head tags, pages, lifespan and extra routes."""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import asynccontextmanager

import reflex as rx

from rubin_app.admin.page import admin_page
from rubin_app.admin.state import AdminState
from rubin_app.api.routes import ApiLayers, build_api
from rubin_app.api.static_assets import StaticCacheHeaders
from rubin_app.backup.job import BackupJob
from rubin_app.components import styles
from rubin_app.components.pwa import pwa_head
from rubin_app.config import get_settings
from rubin_app.pages.account import AccountState, account_page
from rubin_app.pages.api_keys import ApiKeysState
from rubin_app.pages.assistants import assistants_page
from rubin_app.pages.chat import chat_page
from rubin_app.pages.knowledge import knowledge_page
from rubin_app.pages.login import LoginState, PendingState, login_page, pending_page
from rubin_app.pages.two_factor import TwoFactorSetupState, two_factor_page
from rubin_app.services.db import session_scope
from rubin_app.services.migrate import upgrade_head
from rubin_app.services.runtime import get_runtime
from rubin_app.state import stream_channel
from rubin_app.state.assistants import AssistantsState
from rubin_app.state.auth import on_backend_error
from rubin_app.state.chat import ChatState
from rubin_app.state.hardening import install as install_hardening
from rubin_app.state.knowledge import KnowledgeState
from rubin_app.state.log_redaction import install as install_log_redaction
from rubin_app.state.page_load import FreshPageLoad
from rubin_app.state.personal import PersonalState
from rubin_app.state.resilient import install as install_resilient_state
from rubin_app.state.tab_store import TabStateRedis
from rubin_app.vault import startup as vault_startup

log = logging.getLogger("rubin_app")


@asynccontextmanager
async def runtime_lifespan():
    """Start: migrations, keys, background parts (answers a previous process left are resumed); stop: hand live
    answers over (saved as they are)."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_log_redaction()  # again: basicConfig just added the root handler
    os.umask(0o077)  # what the app writes from here on (database, tab states, keys) is this user's only
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)  # the database, the secret key and the engine's model: this user only
    if settings.auto_migrate:
        await asyncio.to_thread(upgrade_head)
    await vault_startup.prepare()  # wrong, missing or loose keys stop the start here, with what to do
    rt = get_runtime()
    await rt.start()  # the worker bus, webhook delivery, recovery of answers a previous process left unfinished
    backups = BackupJob(settings, rt.redis, session_scope)  # scheduled backups, one worker at a time
    backups.start()
    try:
        yield
    finally:
        await stream_channel.close_tabs()  # what the tabs send from now on goes to another worker
        await backups.stop()
        await rt.close()


def _api_layers() -> ApiLayers:
    """Rubin's routes and layers (api/routes.py), then the frontend files' cache headers outermost."""
    layers = build_api()
    layers.append(StaticCacheHeaders)
    return layers


app = rx.App(
    style=styles.GLOBAL_STYLE,
    stylesheets=["/rubin.css"],
    head_components=[
        rx.el.meta(
            name="viewport",
            content="width=device-width, initial-scale=1, viewport-fit=cover, interactive-widget=resizes-content",
        ),
        rx.el.meta(name="color-scheme", content="light dark"),
        rx.el.script(src="/stream.js"),  # before the app opens its websocket: it reads the streamed text off it
        rx.el.script(src="/rubin.js"),
        *pwa_head(),  # installable app: manifest, icons, theme colours, service worker (components/pwa.py)
        rx.el.script(src="/history.js", defer=True),
    ],
    api_transformer=_api_layers(),
    backend_exception_handler=on_backend_error,
)
app.register_lifespan_task(runtime_lifespan)
app.add_middleware(FreshPageLoad(), index=0)  # a page load does not send the last visit's chat first (page_load.py)
if get_settings().redis_url:  # Reflex keeps tab state in Redis: ride out Redis outages (state/resilient.py)
    install_resilient_state(app, connect_timeout=get_settings().redis_timeout, manager_cls=TabStateRedis)
# Tab states bound to the sign-in session, no cookies at rest, same-origin websocket, limits (state/socket.py)
install_hardening(app, get_settings())
app.add_page(chat_page, route="/", title="Rubin AI", on_load=ChatState.on_load)
app.add_page(chat_page, route="/c/[cid]", title="Rubin AI", on_load=ChatState.on_load)
app.add_page(login_page, route="/login", title="Sign in · Rubin AI", on_load=LoginState.on_load)
app.add_page(pending_page, route="/pending", title="Rubin AI", on_load=PendingState.on_load)
app.add_page(
    two_factor_page, route="/two-factor", title="Two-factor sign-in · Rubin AI", on_load=TwoFactorSetupState.on_load
)
app.add_page(
    account_page,
    route="/account",
    title="Account · Rubin AI",
    on_load=[AccountState.on_load, ApiKeysState.load, PersonalState.load],
)
app.add_page(knowledge_page, route="/knowledge", title="Knowledge · Rubin AI", on_load=KnowledgeState.on_load)
app.add_page(assistants_page, route="/assistants", title="Assistants · Rubin AI", on_load=AssistantsState.on_load)
app.add_page(admin_page, route="/admin", title="Admin · Rubin AI", on_load=AdminState.on_load)
