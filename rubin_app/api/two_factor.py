"""The second sign-in step's routes: a code (TOTP or recovery) or a passkey, for a correct password.

The password route (auth.local_login) hands over to `ask_code`: a pending step bound to this browser by the
HttpOnly `rubin_2fa` cookie (path /auth, 5 minutes), then the login page posts the code here, or fetches
passkey options and posts the browser's answer. Every route checks the form comes from the site itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rubin_app.accounts import passkeys, twofactor
from rubin_app.api.auth import _form, _same_origin, _secure, client_ip, remember_device, safe_next, signed_in, to_login
from rubin_app.api.auth import _new_session as new_session
from rubin_app.models import User
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime, get_runtime

Finish = Callable[[AsyncSession, Runtime, Request, dict[str, str], str], Awaitable[User]]


async def ask_code(request: Request, rt: Runtime, user_id: int, target: str) -> Response:
    """The password was right: bind a pending step to this browser (HttpOnly cookie) and ask for the code."""
    async with session_scope() as session:
        token = await twofactor.start_login(
            session=session, user_id=user_id, lifetime=twofactor.PENDING_LIFETIME, ip=client_ip(request)
        )
    response = to_login(step="code", next=target if target != "/" else "")
    response.set_cookie(
        twofactor.PENDING_COOKIE, token, max_age=int(twofactor.PENDING_LIFETIME.total_seconds()), httponly=True,
        secure=_secure(request, rt), samesite="lax", path="/auth",
    )  # fmt: skip
    return response


def _pending_token(request: Request) -> str:
    return request.cookies.get(twofactor.PENDING_COOKIE, "")[:100]


def _origin(request: Request, rt: Runtime) -> str:
    """The page's origin (checked by _same_origin), what a passkey is bound to."""
    return request.headers.get("origin") or rt.settings.public_url or str(request.base_url).rstrip("/")


def _without_pending(response: Response) -> Response:
    response.delete_cookie(twofactor.PENDING_COOKIE, path="/auth", httponly=True, samesite="lax")
    return response


async def _second_step(request: Request, finish: Finish) -> Response:
    """Run one second-step check from a form POST: signed in, or back to the login page with the error."""
    rt = get_runtime()
    if not _same_origin(request):
        return to_login("bad_origin")
    form = await _form(request)
    target = safe_next(form.get("next"))
    again = {"next": target if target != "/" else ""}
    try:
        async with session_scope() as session:
            user = await finish(session, rt, request, form, _pending_token(request))
            assert user.id is not None
            user_id, user_email = user.id, user.email or ""
    except InputError as exc:
        if exc.code == "code_expired":
            return _without_pending(to_login(exc.code, **again))
        return to_login(exc.code, step="code", **again, **exc.params)
    response = _without_pending(signed_in(request, rt, await new_session(rt, request, user_id), target))
    return remember_device(request, rt, response, user_id, user_email)


async def local_code(request: Request) -> Response:
    """The second sign-in step with a TOTP or recovery code (form POST)."""

    async def finish(session: AsyncSession, rt: Runtime, req: Request, form: dict[str, str], token: str) -> User:
        return await twofactor.finish_login(
            session=session, settings=rt.settings, secret_key=rt.secret_key, token=token,
            code=form.get("code", ""), ip=client_ip(req),
        )  # fmt: skip

    return await _second_step(request, finish)


async def local_passkey(request: Request) -> Response:
    """The second sign-in step with a passkey: the browser's answer as JSON in the form (POST)."""

    async def finish(session: AsyncSession, rt: Runtime, req: Request, form: dict[str, str], token: str) -> User:
        return await passkeys.finish_login(
            session=session, settings=rt.settings, token=token, credential=form.get("credential", ""),
            origin=_origin(req, rt), ip=client_ip(req),
        )  # fmt: skip

    return await _second_step(request, finish)


async def passkey_options(request: Request) -> Response:
    """Options for navigator.credentials.get at the pending step (JSON, fetched by the login page)."""
    rt = get_runtime()
    if not _same_origin(request):
        return JSONResponse({"error": "bad_origin"}, status_code=403)
    try:
        async with session_scope() as session:
            options = await passkeys.login_options(
                session=session, token=_pending_token(request), origin=_origin(request, rt)
            )
    except InputError as exc:
        return JSONResponse({"error": exc.code}, status_code=400)
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    """The routes, mounted under /auth with the others."""
    return [
        Route("/local/code", local_code, methods=["POST"]),
        Route("/local/passkey", local_passkey, methods=["POST"]),
        Route("/local/passkey/options", passkey_options, methods=["POST"]),
    ]
