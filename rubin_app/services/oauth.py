"""Sign-in providers through authlib: generic OpenID Connect (discovery) and GitHub (plain OAuth2).

authlib does every protocol step: the authorization code flow with PKCE (S256), `state` kept in the
signed flow cookie, `nonce` for OpenID Connect, and the ID token's signature (provider JWKS), issuer,
audience, expiry and nonce checks. This module maps a provider's answer to an `Identity`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from rubin_app.config import ProviderConfig, Settings

if TYPE_CHECKING:
    from authlib.integrations.starlette_client import OAuthError

log = logging.getLogger(__name__)
TIMEOUT = 10.0


def _load_authlib() -> None:
    """Import authlib at the first use of a provider, not at start (with joserfc and cryptography, ~10 MB)."""
    import authlib.deprecate  # noqa: F401 - sets its own "always" filter first, so ours below wins

    # authlib 1.9 nudges towards the `httpx2` fork; Rubin uses httpx everywhere (authlib supports both).
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in."""

    provider: str
    subject: str
    email: str | None
    name: str


class LoginError(Exception):
    """A sign-in that cannot finish; `code` names the message the login page shows."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


class Providers:
    """The configured providers, registered once with authlib."""

    def __init__(self, settings: Settings) -> None:
        _load_authlib()
        from authlib.integrations.starlette_client import OAuth

        self.configs = {p.id: p for p in settings.auth_providers}
        self.oauth = OAuth()
        for p in settings.auth_providers:
            self._register(p)

    def _register(self, p: ProviderConfig) -> None:
        common: dict[str, Any] = {
            "client_id": p.client_id,
            "client_secret": p.client_secret.get_secret_value(),
            "client_kwargs": {"scope": p.scopes, "code_challenge_method": "S256", "timeout": TIMEOUT},
        }
        if p.kind == "oidc":
            self.oauth.register(p.id, server_metadata_url=f"{p.issuer}/.well-known/openid-configuration", **common)
        else:
            self.oauth.register(
                p.id,
                authorize_url=f"{p.github_url}/login/oauth/authorize",
                access_token_url=f"{p.github_url}/login/oauth/access_token",
                api_base_url=f"{p.github_api_url}/",
                **common,
            )

    def public_list(self) -> list[dict[str, str]]:
        """Id and display name of each provider, for the login page."""
        return [{"id": p.id, "name": p.name, "kind": p.kind} for p in self.configs.values()]

    def client(self, provider_id: str) -> Any:
        """authlib's client for a provider; LoginError("unknown_provider") when there is none."""
        if provider_id not in self.configs:
            raise LoginError("unknown_provider")
        return self.oauth.create_client(provider_id)

    async def redirect(self, provider_id: str, request: Any, redirect_uri: str, *, fresh: bool = False) -> Any:
        """The redirect to the provider's authorization page (state, nonce and PKCE saved in the flow cookie);
        `fresh`: ask the provider to authenticate the user again even when signed in there (`prompt=login`)."""
        client = self.client(provider_id)
        try:
            return await client.authorize_redirect(request, redirect_uri, **({"prompt": "login"} if fresh else {}))
        except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("provider %s unavailable: %s", provider_id, type(exc).__name__)
            raise LoginError("provider_unavailable") from None

    async def finish(self, provider_id: str, request: Any) -> Identity:
        """Exchange the callback's code and return the verified identity; LoginError on any failure."""
        from authlib.common.errors import AuthlibBaseError
        from authlib.integrations.starlette_client import OAuthError
        from joserfc.errors import JoseError

        client = self.client(provider_id)
        error = request.query_params.get("error")
        if error:
            # The provider refused (e.g. the user pressed "Deny"); some providers drop `state` from
            # error answers, and no session can come of one, so the refusal is reported as such.
            raise _classify(provider_id, OAuthError(error=error[:100], description="")) from None
        if not request.query_params.get("state") or not request.query_params.get("code"):
            raise LoginError("login_incomplete")
        try:
            token = await client.authorize_access_token(request)
            if self.configs[provider_id].kind == "github":
                return await self._github_identity(provider_id, client, token)
            return _oidc_identity(provider_id, token)
        except OAuthError as exc:
            raise _classify(provider_id, exc) from None
        except (AuthlibBaseError, JoseError) as exc:
            log.warning("provider %s: ID token rejected: %s", provider_id, type(exc).__name__)
            raise LoginError("login_token", type(exc).__name__) from None
        except httpx.HTTPError as exc:
            log.warning("provider %s unavailable: %s", provider_id, type(exc).__name__)
            raise LoginError("provider_unavailable") from None
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("provider %s: unexpected answer: %s", provider_id, type(exc).__name__)
            raise LoginError("login_failed") from None

    async def _github_identity(self, provider_id: str, client: Any, token: dict[str, Any]) -> Identity:
        user = (await client.get("user", token=token)).raise_for_status().json()
        email = user.get("email")
        if not email:
            emails = (await client.get("user/emails", token=token)).raise_for_status().json()
            verified = [e for e in emails if isinstance(e, dict) and e.get("verified")]
            primary = [e for e in verified if e.get("primary")] or verified
            email = primary[0]["email"] if primary else None
        return Identity(provider_id, str(user["id"]), email, str(user.get("name") or user.get("login") or ""))


def _oidc_identity(provider_id: str, token: dict[str, Any]) -> Identity:
    claims = token.get("userinfo")
    if not claims:
        raise LoginError("login_token", "no id_token")
    email = claims.get("email")
    if email and claims.get("email_verified") is False:
        email = None  # an unverified address cannot be trusted to name an account
    name = claims.get("name") or claims.get("preferred_username") or ""
    return Identity(provider_id, str(claims["sub"]), email, str(name))


def _classify(provider_id: str, exc: OAuthError) -> LoginError:
    error = getattr(exc, "error", "") or ""
    description = str(getattr(exc, "description", "") or "")
    log.warning("provider %s: sign-in refused: %s", provider_id, error or description[:80])
    if "state" in description.lower() or error == "mismatching_state":
        return LoginError("login_state")
    if error == "access_denied":
        return LoginError("login_denied")
    if error in {"invalid_grant", "invalid_request"}:
        return LoginError("login_code")
    return LoginError("login_failed", error)
