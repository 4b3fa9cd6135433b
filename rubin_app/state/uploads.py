"""Reflex's upload route (`/_upload`), bound like the websocket.

Reflex runs an upload's event on the state named by the `reflex-client-token` header: the raw token the tab keeps
in sessionStorage. Rubin's tab states are keyed by that token bound to the sign-in session (`socket.tab_key`), so
this layer checks what the websocket handshake checks — the request comes from the app's own origin, with the
cookie of a live session — and hands Reflex the bound key. An upload without them is refused (403) and reaches no
state; one bigger than the knowledge size limit allows is refused before its body is read (413).
"""

from __future__ import annotations

from typing import Any

from reflex.app import _decode_asgi_headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rubin_app.config import Settings
from rubin_app.services import net
from rubin_app.state.socket import CLIENT_TOKEN, SecureEventNamespace, tab_key

UPLOAD_PATH = "/_upload"
TOKEN_HEADER = b"reflex-client-token"
MAX_FILES = 20  # files of one drop the size check makes room for
FORM_OVERHEAD = 1 << 20


class BoundUploads:
    """ASGI layer: `/_upload` only from this site's pages, with a live session, on the tab's bound state."""

    def __init__(self, app: ASGIApp, settings: Settings, dev_origins: tuple[str, ...] = ()) -> None:
        self.app, self.settings, self.dev_origins = app, settings, dev_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").rstrip("/") != UPLOAD_PATH:
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(scope)
        if isinstance(refusal, PlainTextResponse):
            await refusal(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != TOKEN_HEADER]
        headers.append((TOKEN_HEADER, refusal.encode()))
        await self.app({**scope, "headers": headers}, receive, send)

    async def _refusal(self, scope: Scope) -> PlainTextResponse | str:
        """Why the upload is refused, or the bound state key to run it on."""
        headers: dict[str, Any] = _decode_asgi_headers(scope.get("headers", []))
        peer = str((scope.get("client") or ("", 0))[0] or "")
        trusted = self.settings.trusted_proxies
        scheme = net.forwarded_proto(peer, headers.get("x-forwarded-proto", ""), scope.get("scheme", "http"), trusted)
        if not net.origin_allowed(headers.get("origin"), headers.get("host", ""), self.settings.public_url,
                                  self.dev_origins, scheme=scheme):  # fmt: skip
            return PlainTextResponse("uploads come from this site's pages only", status_code=403)
        limit = MAX_FILES * self.settings.knowledge_max_file_mb * 1048576 + FORM_OVERHEAD
        length = headers.get("content-length", "")
        if not length.isdigit():
            return PlainTextResponse("an upload needs a Content-Length", status_code=411)
        if int(length) > limit:
            return PlainTextResponse("the upload is too large", status_code=413)
        token = headers.get("reflex-client-token", "")
        session_hash = await SecureEventNamespace._live_session(headers.get("cookie", ""))
        if not session_hash or not CLIENT_TOKEN.match(token):
            return PlainTextResponse("sign in to upload", status_code=403)
        return tab_key(token, session_hash)
