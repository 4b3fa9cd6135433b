"""TLS settings: a certificate that cannot be served, a CA for a URL without TLS, or verification switched off in a
URL stop the start with a message naming the setting; nothing is half-configured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rubin_app.config import SettingsError, get_settings
from tests.fakes.certs import TestCA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("pki"))


# Every call starts from none of these (app_env keeps what an earlier call of the same test set).
CLEAR = dict.fromkeys(
    ["tls_cert_file", "tls_key_file", "tls_key_password", "tls_redirect_port", "public_url", "redis_url",
     "redis_ca_file", "redis_cert_file", "redis_key_file", "localai_ca_file"]
)  # fmt: skip


def refused(app_env: Callable[..., None], **settings: object) -> str:
    app_env(**{**CLEAR, **settings})
    with pytest.raises(SettingsError) as info:
        get_settings()
    message = str(info.value)
    assert "Traceback" not in message
    return message


def test_a_served_certificate_is_checked_at_start(app_env: Callable[..., None], pki: TestCA) -> None:
    one, two = pki.issue("one"), pki.issue("two")
    public = "https://127.0.0.1:3000"
    assert "set together" in refused(app_env, tls_cert_file=one.cert, public_url=public)
    assert "cannot be used" in refused(app_env, tls_cert_file=one.cert, tls_key_file=two.key, public_url=public)
    assert "TLS_CERT_FILE" in refused(app_env, tls_cert_file=one.key, tls_key_file=one.key, public_url=public)
    assert "PUBLIC_URL=https://" in refused(app_env, tls_cert_file=one.cert, tls_key_file=one.key)
    message = refused(app_env, tls_cert_file=one.cert, tls_key_file=one.key, public_url=public, tls_redirect_port=3000)
    assert "TLS_REDIRECT_PORT must differ from FRONTEND_PORT" in message
    assert "needs TLS_CERT_FILE" in refused(app_env, tls_redirect_port=8080)
    app_env(tls_cert_file=one.cert, tls_key_file=one.key, public_url=public, tls_redirect_port=8080)
    assert get_settings().tls_cert_file == one.cert.resolve()


def test_missing_files_are_named(app_env: Callable[..., None], tmp_path: Path) -> None:
    message = refused(app_env, redis_url="rediss://127.0.0.1:6380/0", redis_ca_file=tmp_path / "nope.pem")
    assert "REDIS_CA_FILE" in message and "nope.pem is not a file" in message


def test_an_encrypted_key_needs_its_password(app_env: Callable[..., None], pki: TestCA, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    issued = pki.issue("locked")
    key = serialization.load_pem_private_key(issued.key.read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse"),
        )
    )
    wrong = "not-it-Zq81xW"
    files = {"tls_cert_file": issued.cert, "tls_key_file": locked, "public_url": "https://127.0.0.1:3000"}
    message = refused(app_env, tls_key_password=wrong, **files)
    assert "TLS_KEY_PASSWORD" in message and wrong not in message  # the secret never reaches the message
    app_env(tls_key_password="correct horse", **files)
    assert get_settings().tls_key_file == locked.resolve()


@pytest.mark.parametrize("option", ["ssl_cert_reqs=none", "ssl_cert_reqs=optional", "ssl_check_hostname=false"])
def test_redis_verification_cannot_be_switched_off_in_the_url(app_env: Callable[..., None], option: str) -> None:
    message = refused(app_env, redis_url=f"rediss://127.0.0.1:6380/0?{option}")
    assert "REDIS_URL must not switch certificate checks off" in message and "REDIS_CA_FILE" in message


def test_ca_settings_need_a_tls_url(app_env: Callable[..., None], pki: TestCA) -> None:
    assert "rediss://" in refused(app_env, redis_url="redis://127.0.0.1:6379/0", redis_ca_file=pki.cert)
    client = pki.issue("client", client=True)
    message = refused(app_env, redis_url="rediss://127.0.0.1:6380/0", redis_cert_file=client.cert)
    assert "REDIS_CERT_FILE and REDIS_KEY_FILE must be set together" in message
    assert "https:// LOCALAI_URL" in refused(app_env, localai_url="http://127.0.0.1:8080", localai_ca_file=pki.cert)
