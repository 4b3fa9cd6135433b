"""A real OpenID Connect provider on loopback: oidc-provider-mock served by werkzeug in a thread.

The provider does discovery, the authorization code flow, RS256 ID tokens (JWKS), userinfo and
refresh tokens like any other OIDC server. Its login "page" is a form whose POST of `sub` to the
authorize URL signs that subject in (or `action=deny` refuses); a PUT of a JSON claims dict to
`/users/<sub>` first decides what the ID token says about that subject (email, name, ...). A subject
nobody PUT gets the claims `{"email": sub}`.

    with run_oidc_provider() as provider:
        provider.set_user("alice", {"email": "alice@example.com", "name": "Alice"})
        ... AUTH_PROVIDERS=[{"id": "kc", "issuer": provider.issuer, ...}]

Usable from any test suite (it only needs the `oidc-provider-mock` package).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import werkzeug.serving

with warnings.catch_warnings():  # it imports authlib.jose, deprecated in favour of joserfc
    import authlib.deprecate  # noqa: F401 - its own "always" filter first (the app imports authlib only when used)

    warnings.simplefilter("ignore", DeprecationWarning)
    import oidc_provider_mock

HOST = "127.0.0.1"
_SHUTDOWN_TIMEOUT = 5.0


@dataclass
class OIDCProvider:
    """A running provider: `issuer` is what AUTH_PROVIDERS needs (also the discovery base URL)."""

    issuer: str
    port: int
    server: werkzeug.serving.BaseWSGIServer

    @property
    def authorize_url(self) -> str:
        """The authorization endpoint (where the login form posts)."""
        return f"{self.issuer}/oauth2/authorize"

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        """Decide the claims (email, email_verified, name, ...) of a subject's next ID tokens."""
        response = httpx.put(f"{self.issuer}/users/{quote(sub, safe='')}", json=claims, timeout=5)
        response.raise_for_status()

    def login(self, client: httpx.Client, authorize_url: str, sub: str) -> httpx.Response:
        """Sign `sub` in on the provider's form; the answer is the redirect back to the client."""
        return client.post(authorize_url, data={"sub": sub})

    def deny(self, client: httpx.Client, authorize_url: str) -> httpx.Response:
        """Refuse the authorization on the provider's form (redirect back with error=access_denied)."""
        return client.post(authorize_url, data={"action": "deny"})


def _without_deprecation_warnings(app: Any) -> Any:
    """The provider calls authlib APIs that warn (DeprecationWarning) on every token request.

    Test suites that turn warnings into errors would make those requests fail with a 500, so each
    request runs with DeprecationWarning ignored (the test thread waits for the answer meanwhile).
    """

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return list(app(environ, start_response))

    return wsgi


@contextmanager
def run_oidc_provider(
    *,
    access_token_max_age: timedelta = timedelta(hours=1),
    require_nonce: bool = False,
    issue_refresh_token: bool = True,
    users: Sequence[oidc_provider_mock.User] = (),
    port: int = 0,
) -> Iterator[OIDCProvider]:
    """Serve a provider on 127.0.0.1 (a free port unless `port` is given) until the block ends.

    `access_token_max_age` is also the ID token's lifetime: a negative value issues tokens that
    expired before they were sent. `require_nonce` makes the provider refuse authorization requests
    without a nonce.
    """
    app = oidc_provider_mock.app(
        require_nonce=require_nonce,
        issue_refresh_token=issue_refresh_token,
        access_token_max_age=access_token_max_age,
        user_claims=users,
    )
    server = werkzeug.serving.make_server(HOST, port, _without_deprecation_warnings(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.name = f"oidc-provider-{server.server_port}"
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    thread.start()
    try:
        yield OIDCProvider(issuer=f"http://{HOST}:{server.server_port}", port=server.server_port, server=server)
    finally:
        server.shutdown()
        thread.join(_SHUTDOWN_TIMEOUT)
        server.server_close()
        if thread.is_alive():
            raise TimeoutError("the OIDC provider did not stop")
