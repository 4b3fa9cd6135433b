"""Request dependencies of the APIs: the one place that turns a presented key into a principal.

`key_principal` reads `Authorization: Bearer rk-...`; `require(scope)` adds the scope check. Routes declare
what they need (`Annotated[KeyPrincipal, Depends(require("chat"))]`) and stay thin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.api.auth import client_ip
from rubin_app.core.errors import ApiError
from rubin_app.services.runtime import get_runtime


async def key_principal(request: Request) -> KeyPrincipal:
    """The principal of the request's API key (401 when missing, unknown, revoked or expired)."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError("missing_api_key")
    principal, error = await get_runtime().keys.resolve(key, client_ip(request))
    if principal is None:
        raise ApiError(error or "invalid_api_key")
    request.state.principal = principal
    return principal


def require(scope: str) -> Callable[[Request], Awaitable[KeyPrincipal]]:
    """A dependency: the key's principal, refused with 403 unless the key has `scope`."""

    async def dependency(request: Request) -> KeyPrincipal:
        principal = await key_principal(request)
        if not principal.allows(scope):
            raise ApiError("insufficient_scope", f"this call needs the '{scope}' scope", param=scope)
        return principal

    return dependency
