"""The state behind the webhooks sections: the account page manages the user's own endpoints
(`WebhooksState`), the admin page the instance's (`InstanceWebhooksState`). Add (URL, events; the secret is
shown once), switch on/off, send a test event, rotate the secret, delete, read the last deliveries, redeliver."""

from __future__ import annotations

import reflex as rx

from rubin_app import i18n
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState
from rubin_app.webhooks import events, service
from rubin_app.webhooks.errors import WebhookError
from rubin_app.webhooks.models import EndpointScope
from rubin_app.webhooks.schemas import EndpointCreate, EndpointUpdate

SHOWN_DELIVERIES = 10


class WebhooksState(AuthState):
    """The signed-in user's webhook endpoints (scope "user"); every handler re-checks the session."""

    scope: str = EndpointScope.user.value
    hooks: list[dict[str, str]] = []
    deliveries: list[dict[str, str]] = []
    deliveries_of: str = ""  # the endpoint whose log is open
    event_names: list[str] = []
    new_secret: str = ""
    hooks_error: str = ""
    may_add: bool = True  # the user's groups allow webhooks (the service checks again)

    async def _actor(self) -> service.Actor:
        principal = await self._require(admin=self.scope == EndpointScope.instance)
        return service.Actor(user_id=principal.user_id, is_admin=principal.is_admin)

    @rx.event
    async def load_hooks(self) -> None:
        """Read the endpoints (a secret shown once is not shown again)."""
        self.new_secret = ""
        actor = await self._actor()
        lang = self.lang or i18n.DEFAULT_LANGUAGE
        async with session_scope(read_only=True) as session:
            rows = await service.list_endpoints(session, actor=actor, scope=EndpointScope(self.scope))
        self.hooks = [
            {"id": str(e.id), "url": e.url, "events": ", ".join(e.events), "enabled": "1" if e.enabled else "",
             "reason": e.disabled_reason, "created": i18n.when(e.created_at, lang)}
            for e in rows
        ]  # fmt: skip
        self.event_names = events.subscribable(self.scope)
        self.may_add = (await get_runtime().permissions.get(actor.user_id)).webhooks
        if self.deliveries_of and self.deliveries_of not in {h["id"] for h in self.hooks}:
            self.deliveries_of, self.deliveries = "", []

    async def _run(self, action: str, endpoint_id: str = "", form: dict | None = None) -> None:
        actor = await self._actor()
        rt = get_runtime()
        self.hooks_error = ""
        try:
            if action == "create":
                chosen = [name for name in self.event_names if (form or {}).get(f"event_{name}") in ("on", True)]
                data = EndpointCreate(url=str((form or {}).get("url", "")).strip(), events=chosen or ["*"],
                                      scope=EndpointScope(self.scope))  # fmt: skip
                await service.check_endpoint_url(data.url, rt.settings)
            async with session_scope() as session:
                hook_id = int(endpoint_id or 0)
                if action == "create":
                    made = await service.create_endpoint(
                        session, actor=actor, settings=rt.settings, secret_key=rt.secret_key, data=data
                    )
                    secret = made.secret
                elif action == "rotate":
                    made = await service.rotate_secret(
                        session, actor=actor, settings=rt.settings, secret_key=rt.secret_key, endpoint_id=hook_id
                    )
                    secret = made.secret
                elif action in ("enable", "disable"):
                    await service.update_endpoint(
                        session, actor=actor, settings=rt.settings, endpoint_id=hook_id,
                        data=EndpointUpdate(enabled=action == "enable"),
                    )  # fmt: skip
                elif action == "test":
                    await service.send_test(session, actor=actor, endpoint_id=hook_id)
                elif action == "delete":
                    await service.delete_endpoint(session, actor=actor, endpoint_id=hook_id)
        except (WebhookError, ValueError) as exc:
            self.hooks_error = exc.message if isinstance(exc, WebhookError) else self._t("err_bad_setting")
            return
        await self.load_hooks()
        if action in ("create", "rotate"):
            self.new_secret = secret
        if action == "test":
            await self.show_deliveries(endpoint_id)

    @rx.event
    async def create_hook(self, form: dict) -> None:
        """Add an endpoint (refused for non-HTTP(S) URLs and private addresses)."""
        await self._run("create", form=form)

    @rx.event
    async def hook_action(self, action: str, endpoint_id: str) -> None:
        """enable, disable, test, rotate or delete one endpoint."""
        if action in ("enable", "disable", "test", "rotate", "delete"):
            await self._run(action, endpoint_id)

    @rx.event
    async def show_deliveries(self, endpoint_id: str) -> None:
        """The endpoint's last deliveries, newest first."""
        actor = await self._actor()
        lang = self.lang or i18n.DEFAULT_LANGUAGE
        try:
            async with session_scope(read_only=True) as session:
                page = await service.list_deliveries(
                    session, actor=actor, endpoint_id=int(endpoint_id), limit=SHOWN_DELIVERIES
                )
        except (WebhookError, ValueError):
            self.deliveries_of, self.deliveries = "", []
            return
        self.deliveries_of = endpoint_id
        self.deliveries = [
            {"id": str(d.id), "event": d.event_type, "status": d.status, "attempts": str(d.attempts),
             "code": str(d.last_status_code or ""), "when": i18n.when(d.created_at, lang)}
            for d in page.items
        ]  # fmt: skip

    @rx.event
    async def redeliver(self, delivery_id: str) -> None:
        """Send a past delivery again."""
        actor = await self._actor()
        try:
            async with session_scope() as session:
                await service.redeliver(
                    session, actor=actor, endpoint_id=int(self.deliveries_of), delivery_id=int(delivery_id)
                )
        except (WebhookError, ValueError) as exc:
            self.hooks_error = exc.message if isinstance(exc, WebhookError) else ""
            return
        await self.show_deliveries(self.deliveries_of)


class InstanceWebhooksState(WebhooksState):
    """The instance's webhook endpoints (admins only)."""

    scope: str = EndpointScope.instance.value
