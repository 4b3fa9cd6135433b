"""Sign-in routes: provider redirects and callbacks, local sign-in and sign-up forms, sign-out, export.

The session cookie is set only here (HttpOnly, SameSite=Lax, Secure over HTTPS). Forms post here from
the login page; errors go back to it as a code in the query string, never with the password.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from rubin_app.accounts import reauth
from rubin_app.config import PROVIDER_ID
from rubin_app.services import accounts, audit, login_guard, net, sessions
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.export import export_data
from rubin_app.services.oauth import LoginError
from rubin_app.services.runtime import Runtime, get_runtime
from rubin_app.services.sessions import COOKIE_NAME, Principal

log = logging.getLogger(__name__)
FLOW_COOKIE = "rubin_flow"
FLOW_MAX_AGE = 600
FIELD_MAX = 1000  # longest form field kept (an email is at most 254; longer input is an error anyway)
CALLBACKS_PER_MINUTE = 20  # provider callbacks processed per IP per minute (a person signs in a few times a day)
CALLBACK_WINDOW_MS = 600_000  # the window of the audit budgets below
AUDITED_FAILURES = 10  # failed callbacks of a configured provider audited per IP per window
UNKNOWN_PROVIDER_AUDITS = 3  # callbacks for provider ids that are not configured, audited per IP per window


# --------------------------------------------------------------------------- helpers


def _peer(request: Request) -> str:
    return request.client.host if request.client else ""


def client_ip(request: Request) -> str:
    """The client's address: the peer, or X-Forwarded-For when the peer is one of TRUSTED_PROXIES."""
    trusted = get_runtime().settings.trusted_proxies
    # Every X-Forwarded-For line, in order: a proxy may add a line of its own instead of appending.
    forwarded = ", ".join(request.headers.getlist("x-forwarded-for"))
    return net.client_address(_peer(request), forwarded, trusted)


def safe_next(value: str | None) -> str:
    """A same-site path to return to after sign-in; anything else becomes "/"."""
    value = (value or "").strip()
    if not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 500:
        return "/"
    if value.startswith(("/login", "/auth/")):
        return "/"
    return value


def to_login(code: str = "", **params: Any) -> RedirectResponse:
    """Back to the login page with an error code (and harmless fields to refill)."""
    query = {k: str(v) for k, v in {"error": code, **params}.items() if v not in ("", None)}
    return RedirectResponse("/login" + (f"?{urlencode(query)}" if query else ""), status_code=303)


def _scheme(request: Request, rt: Runtime) -> str:
    """The scheme the client used: this connection's (https with TLS_CERT_FILE), or a trusted proxy's."""
    proto = request.headers.get("x-forwarded-proto", "")
    return net.forwarded_proto(_peer(request), proto, request.url.scheme, rt.settings.trusted_proxies)


def _secure(request: Request, rt: Runtime) -> bool:
    """Whether cookies get Secure: COOKIE_SECURE, else HTTPS here or at a trusted proxy, or an https PUBLIC_URL."""
    if rt.settings.cookie_secure is not None:
        return rt.settings.cookie_secure
    return _scheme(request, rt) == "https" or rt.settings.public_url.startswith("https://")


def signed_in(request: Request, rt: Runtime, token: str, target: str) -> RedirectResponse:
    """Redirect to `target` with the new session cookie."""
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(timedelta(hours=rt.settings.session_lifetime_hours).total_seconds()),
        httponly=True,
        secure=_secure(request, rt),
        samesite="lax",
        path="/",
    )
    return response


def _same_origin(request: Request) -> bool:
    """Forms must come from this site (login CSRF): browsers always send Origin on a POST."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    rt = get_runtime()
    scheme = _scheme(request, rt)
    return net.origin_allowed(origin, request.headers.get("host", ""), rt.settings.public_url, scheme=scheme)


async def _form(request: Request) -> dict[str, str]:
    async with request.form(max_files=0, max_fields=20) as form:
        return {k: v[: FIELD_MAX * 4] for k, v in form.items() if isinstance(v, str)}


async def current_principal(request: Request) -> Principal | None:
    """The signed-in user of an HTTP request, from the session cookie."""
    return await get_runtime().principal(request.cookies.get(COOKIE_NAME))


async def _new_session(rt: Runtime, request: Request, user_id: int) -> str:
    async with session_scope() as session:
        return await sessions.create(
            session=session,
            user_id=user_id,
            lifetime=timedelta(hours=rt.settings.session_lifetime_hours),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
        )


async def _record_failure(request: Request, detail: str, email: str | None = None, *, budget: int) -> None:
    """Audit a failed provider callback, at most `budget` per IP per window (then it is dropped unwritten)."""
    ip = client_ip(request)
    audited, _ = await get_runtime().limiter.hit(f"auth_callback_audit:{budget}:{ip}", budget, CALLBACK_WINDOW_MS)
    if not audited:
        return
    async with session_scope() as session:
        await audit.record(session=session, action=audit.PROVIDER_FAILED, ok=False, email=email, ip=ip, detail=detail)


# --------------------------------------------------------------------------- providers


async def provider_login(request: Request) -> Response:
    """Start a provider sign-in: remember where to return, redirect to the provider."""
    rt = get_runtime()
    provider = request.path_params["provider"]
    if not PROVIDER_ID.fullmatch(provider):
        return to_login("unknown_provider")
    request.session.clear()
    request.session["next"] = safe_next(request.query_params.get("next"))
    fresh = request.query_params.get("reauth") == "1"  # an admin confirming who they are (accounts/reauth.py)
    request.session["reauth"] = fresh
    # Without PUBLIC_URL: this address, with the scheme the client used (https at a trusted TLS proxy).
    base = rt.settings.public_url or str(request.base_url.replace(scheme=_scheme(request, rt))).rstrip("/")
    try:
        return await rt.providers.redirect(provider, request, f"{base}/auth/callback/{provider}", fresh=fresh)
    except LoginError as exc:
        return to_login(exc.code)


async def provider_callback(request: Request) -> Response:
    """Finish a provider sign-in: verify everything, then open a session.

    Per IP, at most CALLBACKS_PER_MINUTE callbacks are processed; failures are audited within a budget
    (a few for provider ids that are not configured), so junk callbacks cannot flood the audit log.
    """
    rt = get_runtime()
    provider = request.path_params["provider"]
    allowed, wait = await rt.limiter.hit(f"auth_callback:{client_ip(request)}", CALLBACKS_PER_MINUTE)
    if not allowed:
        request.session.clear()
        return to_login("login_too_many", minutes=max(1, -(-int(wait) // 60)))
    if not PROVIDER_ID.fullmatch(provider) or provider not in {p.id for p in rt.settings.auth_providers}:
        request.session.clear()
        shown = provider if PROVIDER_ID.fullmatch(provider) else "(invalid id)"
        await _record_failure(request, f"{shown}: unknown_provider", budget=UNKNOWN_PROVIDER_AUDITS)
        return to_login("unknown_provider")
    target = safe_next(request.session.get("next"))
    fresh = bool(request.session.get("reauth"))
    try:
        identity = await rt.providers.finish(provider, request)
    except LoginError as exc:
        request.session.clear()
        await _record_failure(request, f"{provider}: {exc.code} {exc.detail}".strip(), budget=AUDITED_FAILURES)
        return to_login(exc.code)
    request.session.clear()
    try:
        async with session_scope() as session:
            user = await accounts.sign_in_external(
                session=session, settings=rt.settings, provider=provider, subject=identity.subject,
                email=identity.email, display_name=identity.name, ip=client_ip(request),
            )  # fmt: skip
            assert user.id is not None
            user_id = user.id
    except InputError as exc:
        await _record_failure(request, f"{provider}: {exc.code}", identity.email, budget=AUDITED_FAILURES)
        return to_login(exc.code)
    token = await _new_session(rt, request, user_id)
    if fresh:  # asked with prompt=login: this new session counts as re-authenticated
        async with session_scope() as session:
            principal = await sessions.resolve(session=session, token=token)
            if principal is not None:
                await reauth.mark(
                    session=session, user_id=user_id, session_id=principal.session_id, how=f"provider {provider}",
                    ip=client_ip(request),
                )  # fmt: skip
    return signed_in(request, rt, token, target)


# --------------------------------------------------------------------------- local accounts


def remember_device(request: Request, rt: Runtime, response: Response, user_id: int, email: str) -> Response:
    """Mark this browser as a known device of the account (signed, HttpOnly, sent only to /auth)."""
    cookie = request.cookies.get(login_guard.DEVICE_COOKIE, "")[:1000]
    value = login_guard.remember_device(rt.secret_key, cookie, user_id=user_id, email=email)
    response.set_cookie(
        login_guard.DEVICE_COOKIE, value, max_age=int(timedelta(days=rt.settings.login_device_days).total_seconds()),
        httponly=True, secure=_secure(request, rt), samesite="lax", path="/auth",
    )  # fmt: skip
    return response


async def local_login(request: Request) -> Response:
    """Email + password sign-in (form POST)."""
    rt = get_runtime()
    if not _same_origin(request):
        return to_login("bad_origin")
    form = await _form(request)
    email, target = form.get("email", "")[:FIELD_MAX], safe_next(form.get("next"))
    try:
        async with session_scope() as session:
            user = await accounts.sign_in_local(
                session=session, settings=rt.settings, email=email, password=form.get("password", ""),
                ip=client_ip(request), device_cookie=request.cookies.get(login_guard.DEVICE_COOKIE, "")[:1000],
                device_key=rt.secret_key,
            )  # fmt: skip
            assert user.id is not None
            user_id, user_email = user.id, user.email or ""
    except accounts.SecondFactorNeeded as need:
        from rubin_app.api import two_factor  # imports this module's helpers

        return await two_factor.ask_code(request, rt, need.user_id, target)
    except InputError as exc:
        return to_login(exc.code, email=email[:254], next=target if target != "/" else "", **exc.params)
    response = signed_in(request, rt, await _new_session(rt, request, user_id), target)
    return remember_device(request, rt, response, user_id, user_email)


async def local_signup(request: Request) -> Response:
    """Create a local account and sign in (form POST)."""
    rt = get_runtime()
    if not _same_origin(request):
        return to_login("bad_origin", mode="signup")
    form = await _form(request)
    email, name = form.get("email", "")[:FIELD_MAX], form.get("name", "")[:FIELD_MAX]
    password = form.get("password", "")
    if password != form.get("password2", password):
        return to_login("password_mismatch", mode="signup", email=email[:254], name=name[:100])
    try:
        async with session_scope() as session:
            user = await accounts.sign_up_local(
                session=session, settings=rt.settings, email=email, password=password, display_name=name,
                ip=client_ip(request),
            )  # fmt: skip
            assert user.id is not None
            user_id, user_email = user.id, user.email or ""
    except InputError as exc:
        return to_login(exc.code, mode="signup", email=email[:254], name=name[:100], **exc.params)
    response = signed_in(request, rt, await _new_session(rt, request, user_id), "/")
    return remember_device(request, rt, response, user_id, user_email)


# --------------------------------------------------------------------------- sign-out, export


def _signed_out(target: str) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax")
    return response


async def logout(request: Request) -> Response:
    """End this browser's session (form POST)."""
    rt = get_runtime()
    if not _same_origin(request):
        return to_login("bad_origin")
    token = request.cookies.get(COOKIE_NAME)
    if token:
        async with session_scope() as session:
            user_id = await sessions.revoke(session=session, token=token)
            if user_id is not None:
                await audit.record(session=session, action=audit.SIGN_OUT, user_id=user_id, ip=client_ip(request))
        rt.principals.forget_token(token)
    return _signed_out("/login?info=signed_out")


async def logout_all(request: Request) -> Response:
    """End every session of the signed-in user, on all devices (form POST)."""
    rt = get_runtime()
    if not _same_origin(request):
        return to_login("bad_origin")
    principal = await current_principal(request)
    if principal is not None:
        async with session_scope() as session:
            ended = await sessions.revoke_all(session=session, user_id=principal.user_id)
            await audit.record(
                session=session, action=audit.SIGN_OUT_ALL, user_id=principal.user_id, ip=client_ip(request),
                detail=f"ended {ended}",
            )  # fmt: skip
        rt.principals.forget_user(principal.user_id)
    return _signed_out("/login?info=signed_out_all")


async def signed_out(request: Request) -> Response:
    """Drop a dead session cookie (after the account was deleted); a live one is left alone."""
    if await current_principal(request) is not None:
        return RedirectResponse("/", status_code=303)
    return _signed_out("/login?" + urlencode({"info": request.query_params.get("info", "signed_out")[:40]}))


async def export(request: Request) -> Response:
    """Download everything of the signed-in user as JSON.

    The data is read page by page and the JSON is written and sent in pieces of about `chunk` bytes,
    giving the event loop back after each: a big export never holds up other users' events (json.dumps
    of the whole export at once held the loop for seconds, and a thread would not help: the C encoder
    keeps the GIL). A read-only session: one consistent snapshot, and no write lock while it is read.
    """
    principal = await current_principal(request)
    if principal is None:
        return JSONResponse({"error": "not_signed_in"}, status_code=401)
    async with session_scope(read_only=True) as session:
        data = await export_data(session=session, user_id=principal.user_id)
    stamp = data["exported_at"][:10].replace("-", "")
    chunk = 256 * 1024

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    def fields(record: dict[str, Any], skip: str) -> str:
        return ", ".join(f"{dump(k)}: {dump(v)}" for k, v in record.items() if k != skip)

    async def body() -> AsyncIterator[bytes]:
        parts = ["{" + fields(data, "conversations") + ', "conversations": [']
        size = 0
        for i, conversation in enumerate(data["conversations"]):
            parts.append(("," if i else "") + "\n {" + fields(conversation, "messages") + ', "messages": [')
            for j, message in enumerate(conversation["messages"]):
                piece = ("," if j else "") + "\n  " + dump(message)
                parts.append(piece)
                size += len(piece)
                if size >= chunk:
                    yield "".join(parts).encode()
                    parts, size = [], 0
                    await asyncio.sleep(0)
            parts.append("]}")
        parts.append("\n]}\n")
        yield "".join(parts).encode()

    return StreamingResponse(
        body(),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="rubin-export-{stamp}.json"',
            "Cache-Control": "no-store",
        },
    )


# --------------------------------------------------------------------------- the mounted app


class AuthApp:
    """The /auth routes with the signed flow cookie; built on first request (the key may be generated)."""

    def __init__(self) -> None:
        self._app: Starlette | None = None

    def _build(self) -> Starlette:
        from rubin_app.api.two_factor import routes as two_factor_routes  # imports this module's helpers

        rt = get_runtime()
        routes = [
            *two_factor_routes(),
            Route("/login/{provider}", provider_login),
            Route("/callback/{provider}", provider_callback),
            Route("/local/login", local_login, methods=["POST"]),
            Route("/local/signup", local_signup, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/logout-all", logout_all, methods=["POST"]),
            Route("/signed-out", signed_out),
        ]
        flow = Middleware(
            SessionMiddleware,
            secret_key=rt.secret_key,
            session_cookie=FLOW_COOKIE,
            max_age=FLOW_MAX_AGE,
            path="/auth",
            same_site="lax",
            https_only=bool(rt.settings.cookie_secure) or rt.settings.public_url.startswith("https://"),
        )
        return Starlette(routes=routes, middleware=[flow])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)
