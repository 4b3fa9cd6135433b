"""Reflex's websocket, hardened: tab states bound to the sign-in session, no cookies at rest, limits.

Reflex keys each tab's whole state by the client token the browser puts in the websocket URL
(`/_event/?token=...`, kept in sessionStorage). Whoever presents a token gets that tab's state, and the
first frame of the boot `hydrate` carries all of it — before any handler checks who is asking. So:

* **Bound states.** The token is never used as the state key. The key is derived from the presented
  token *and* the session cookie of the connection (`tab_key`): the same tab with the same sign-in gets
  its state back after a reload; the same token without that cookie (another browser, a closed tab's
  token found later, the same tab after sign-out) lands on a fresh, empty state. Sessions that end
  (sign-out, revocation, account deletion) purge their tabs' states (`purge_sessions`).
* **No credentials at rest.** Reflex stores each connection's headers in the pickled state. The Cookie
  and Authorization headers are dropped before that; the state keeps only the SHA-256 of the session
  token (`SESSION_HEADER`), which is what the sessions table stores too and is no usable cookie.
* **Same origin only.** A page on another origin (another port of the same host, a sibling subdomain)
  cannot open the websocket with the victim's cookie: the handshake's Origin must be the app's own.
* **Limits.** Connections per IP (at once and opened per minute) and events per second per tab and per
  user are capped (`RateGate`), so one client cannot fill memory or starve other users' events.
* The client address honours TRUSTED_PROXIES only (`services/net.py`), like the HTTP routes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import urllib.parse
from typing import Any

from reflex.app import EventNamespace, _decode_asgi_headers
from reflex.istate.data import SessionData
from reflex.istate.manager.token import BaseStateToken
from reflex_base import constants
from socketio.exceptions import ConnectionRefusedError as SocketRefused

from rubin_app.config import Settings
from rubin_app.services import net
from rubin_app.services.runtime import get_runtime
from rubin_app.services.sessions import hash_token, token_from_cookie_header
from rubin_app.state.rate_gate import RateGate

log = logging.getLogger(__name__)

SESSION_HEADER = "x-rubin-session"  # the session token's SHA-256, set here from the cookie, never by the client
DROPPED_HEADERS = ("cookie", "authorization", "proxy-authorization", SESSION_HEADER)
ANONYMOUS = "anon"
CLIENT_TOKEN = re.compile(r"^[A-Za-z0-9-]{8,100}$")


def tab_key(client_token: str, session_hash: str) -> str:
    """The state key of a tab: its client token bound to its sign-in session (or to none).

    A pure function of what the connection presents, so a tab's reload finds its state, and nothing
    presented without the session's cookie reaches it. The tail names the session (16 hex digits of the
    token hash, itself a hash) so the states of an ended session can be found and purged.
    """
    digest = hashlib.sha256(f"{client_token}|{session_hash}".encode()).hexdigest()[:32]
    return f"t{digest}-{session_hash[:16] if session_hash else ANONYMOUS}"


def is_anonymous(key: str) -> bool:
    """Whether a state key belongs to a signed-out tab."""
    return key.endswith(f"-{ANONYMOUS}")


def session_tail(session_hash: str) -> str:
    """The part of a tab key that names its session."""
    return f"-{session_hash[:16]}"


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The handshake's headers, decoded as Reflex does (a header sent on several lines is joined in order)."""
    return _decode_asgi_headers(environ.get("asgi.scope", {}).get("headers", []))


def _peer(environ: dict[str, Any]) -> str:
    client = environ.get("asgi.scope", {}).get("client") or (environ.get("REMOTE_ADDR", ""), 0)
    return str(client[0] or "")


class SecureEventNamespace(EventNamespace):
    """Reflex's event namespace with session-bound states, origin checks and limits."""

    def __init__(self, namespace: str, app: Any, settings: Settings, dev_origins: tuple[str, ...] = ()) -> None:
        super().__init__(namespace, app)
        self.settings = settings
        self.dev_origins = dev_origins
        self.gate = RateGate(
            events_per_second=settings.ws_events_per_second,
            connections_per_ip=settings.ws_connections_per_ip,
        )
        self._sid_session: dict[str, str] = {}
        self._sid_ip: dict[str, str] = {}

    # ---- connect -----------------------------------------------------------------------------------
    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        """Refuse foreign origins and over-limit IPs; bind the presented token to the session cookie."""
        headers = _headers(environ)
        peer, trusted = _peer(environ), self.settings.trusted_proxies
        scheme = {"wss": "https", "ws": "http"}.get(environ.get("asgi.scope", {}).get("scheme", ""), "")
        scheme = net.forwarded_proto(peer, headers.get("x-forwarded-proto", ""), scheme, trusted) if scheme else ""
        if not net.origin_allowed(headers.get("origin"), headers.get("host", ""), self.settings.public_url,
                                  self.dev_origins, scheme=scheme):  # fmt: skip
            log.warning("websocket refused: foreign origin %r", (headers.get("origin") or "")[:100])
            raise SocketRefused("origin not allowed")
        ip = net.client_address(peer, headers.get("x-forwarded-for", ""), trusted)
        if not self.gate.open_connection(ip):
            log.warning("websocket refused: too many connections from one address")
            raise SocketRefused("too many connections")
        session_hash = await self._live_session(headers.get("cookie", ""))
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        presented = (query.get("token") or [""])[0]
        if not CLIENT_TOKEN.match(presented):
            self.gate.close_connection(ip)
            raise SocketRefused("bad token")
        query["token"] = [tab_key(presented, session_hash)]
        environ["QUERY_STRING"] = urllib.parse.urlencode(query, doseq=True)
        self._sid_session[sid], self._sid_ip[sid] = session_hash, ip
        try:
            await super().on_connect(sid, environ, auth)
        except BaseException:
            self._forget(sid)
            raise

    @staticmethod
    async def _live_session(cookie_header: str) -> str:
        """The hash of the connection's session token when that session is live; "" (signed out) otherwise.

        A made-up, revoked or idle-expired cookie binds the tab to nothing: it gets a signed-out tab's state
        (memory only, short-lived), never a state that a dead session left behind.
        """
        cookie = token_from_cookie_header(cookie_header)
        if not cookie:
            return ""
        session_hash = hash_token(cookie)
        return session_hash if await get_runtime().principal_by_hash(session_hash) is not None else ""

    def _build_static_router_data(self, sid: str, environ: dict) -> dict[str, Any]:
        """Reflex's per-connection router data, minus credentials, with the trusted client address."""
        data = super()._build_static_router_data(sid, environ)
        headers: dict[str, str] = data[constants.RouteVar.HEADERS]
        for name in DROPPED_HEADERS:
            headers.pop(name, None)
        if session_hash := self._sid_session.get(sid, ""):
            headers[SESSION_HEADER] = session_hash
        data[constants.RouteVar.CLIENT_IP] = self._sid_ip.get(sid) or data[constants.RouteVar.CLIENT_IP]
        return data

    async def link_token_to_sid(self, sid: str, token: str, *, update_state: bool = True) -> None:
        """Reflex's linking, except that a duplicate tab's new token is bound to the session as well."""
        new_token = await self._token_manager.link_token_to_sid(token, sid)
        if new_token:
            # The browser keeps the raw token it is given; the state key is derived from it, as on connect.
            await self._token_manager.disconnect_token(new_token, sid)
            bound = tab_key(new_token, self._sid_session.get(sid, ""))
            await self._token_manager.link_token_to_sid(bound, sid)
            await self.emit("new_token", new_token, to=sid)
            token = bound
        if update_state and self.app._state is not None:
            async with self.app.state_manager.modify_state(BaseStateToken(ident=token, cls=self.app._state)) as state:
                state.router_data[constants.RouteVar.SESSION_ID] = sid
                state.router_data[constants.RouteVar.CLIENT_TOKEN] = token
                if (session := SessionData.from_router_data(state.router_data)) != state.rx_router_session:
                    state.rx_router_session = session

    # ---- events ------------------------------------------------------------------------------------
    async def on_event(self, sid: str, data: Any) -> None:
        """Throttle a tab (and its user) that sends more events than a person can; then Reflex's handling."""
        owner = self._sid_session.get(sid) or self._sid_ip.get(sid, "")
        wait = self.gate.event_delay(sid, owner)
        if wait is None:
            if self.gate.note_dropped(sid):
                log.warning("websocket closed: a tab kept sending events far over the limit")
                await self.disconnect(sid)
            return
        if wait > 0:
            await asyncio.sleep(wait)  # back-pressure on this socket only: its frames wait, others do not
        await super().on_event(sid, data)

    # ---- disconnect --------------------------------------------------------------------------------
    def on_disconnect(self, sid: str) -> asyncio.Task | None:
        """Release the connection's slot, then Reflex's cleanup."""
        self._forget(sid)
        return super().on_disconnect(sid)

    def _forget(self, sid: str) -> None:
        ip = self._sid_ip.pop(sid, None)
        self._sid_session.pop(sid, None)
        if ip is not None:
            self.gate.close_connection(ip)
        self.gate.forget(sid)
