"""Settings: a wrong environment gives a readable start-up error, right ones are normalised."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rubin_app.config import SettingsError, get_settings


def test_defaults_point_at_the_bundled_engine_and_sqlite(app_env: Callable[..., None]) -> None:
    app_env(localai_url=None, engine_port=8181)
    settings = get_settings()
    assert settings.llm_base_url == "http://127.0.0.1:8181"
    assert settings.sync_database_url.startswith("sqlite:///")
    assert settings.sync_database_url.endswith("/data/rubin.db")
    assert settings.async_database_url.startswith("sqlite+aiosqlite:///")
    assert get_settings() is settings  # cached


@pytest.mark.parametrize("url", ["localhost:8080", "127.0.0.1:8080/v1", "ftp://example.com"])
def test_localai_url_without_http_scheme_is_rejected(app_env: Callable[..., None], url: str) -> None:
    app_env(localai_url=url)
    with pytest.raises(SettingsError) as info:
        get_settings()
    assert isinstance(info.value, SystemExit)
    message = str(info.value)
    assert "LOCALAI_URL" in message
    assert "http://" in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    "url", ["http://", "http://[::1", "http:// spaced host:8080", "http://localai:99999", "http://:8080"]
)
def test_localai_url_that_cannot_be_used_is_rejected_at_start(app_env: Callable[..., None], url: str) -> None:
    app_env(localai_url=url)
    with pytest.raises(SettingsError) as info:
        get_settings()
    assert "LOCALAI_URL" in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localai:8080/v1", "http://localai:8080"),
        ("http://localai:8080/v1/", "http://localai:8080"),
        ("  https://ai.example.com/  ", "https://ai.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://gateway/localai/v1", "http://gateway/localai"),
    ],
)
def test_localai_url_is_normalised(app_env: Callable[..., None], url: str, expected: str) -> None:
    app_env(localai_url=url)
    assert get_settings().localai_url == expected
    assert get_settings().llm_base_url == expected


@pytest.mark.parametrize(
    ("url", "sync", "async_"),
    [
        (
            "postgres://u:p@db:5432/rubin",
            "postgresql+psycopg://u:p@db:5432/rubin",
            "postgresql+psycopg://u:p@db:5432/rubin",
        ),
        (
            "postgresql://u:p@db/rubin",
            "postgresql+psycopg://u:p@db/rubin",
            "postgresql+psycopg://u:p@db/rubin",
        ),
        (
            "postgresql+psycopg://u@db/rubin",
            "postgresql+psycopg://u@db/rubin",
            "postgresql+psycopg://u@db/rubin",
        ),
        ("sqlite:////srv/rubin.db", "sqlite:////srv/rubin.db", "sqlite+aiosqlite:////srv/rubin.db"),
        ("sqlite+aiosqlite:////srv/rubin.db", "sqlite:////srv/rubin.db", "sqlite+aiosqlite:////srv/rubin.db"),
    ],
)
def test_database_url_is_converted_for_both_drivers(
    app_env: Callable[..., None], url: str, sync: str, async_: str
) -> None:
    app_env(database_url=url)
    settings = get_settings()
    assert settings.sync_database_url == sync
    assert settings.async_database_url == async_


@pytest.mark.parametrize("url", ["mysql://u@db/rubin", "rubin.db", "http://db/rubin"])
def test_bad_database_url_is_rejected(app_env: Callable[..., None], url: str) -> None:
    app_env(database_url=url)
    with pytest.raises(SettingsError) as info:
        get_settings()
    assert "DATABASE_URL" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TITLE_MODE", "sometimes"),
        ("LOG_LEVEL", "LOUD"),
        ("LLM_RETRIES", "-1"),
        ("CONTEXT_TOKEN_BUDGET", "10"),
        ("LLM_READ_TIMEOUT", "0"),
        ("FRONTEND_PORT", "70000"),
    ],
)
def test_other_invalid_settings_name_the_variable(app_env: Callable[..., None], name: str, value: str) -> None:
    app_env(**{name.lower(): value})
    with pytest.raises(SettingsError) as info:
        get_settings()
    assert name in str(info.value)


def test_dotenv_file_is_read(app_env: Callable[..., None], tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TITLE_MODE")
    (tmp_path / ".env").write_text("TITLE_MODE=llm\nSYSTEM_PROMPT=Be a pirate.\n", encoding="utf-8")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.title_mode == "llm"
    assert settings.system_prompt == "Be a pirate."


@pytest.mark.parametrize(("value", "expected"), [("", None), ("  ", None), ("0", 0.0), ("0.7", 0.7)])
def test_empty_temperature_means_the_server_default(
    app_env: Callable[..., None], value: str, expected: float | None
) -> None:
    app_env(llm_temperature=value)
    assert get_settings().llm_temperature == expected


def test_api_key_is_secret(app_env: Callable[..., None]) -> None:
    app_env(localai_api_key="sk-very-secret")
    settings = get_settings()
    assert settings.localai_api_key is not None
    assert settings.localai_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings)


# --------------------------------------------------------------------------- sign-in settings

KC = {"id": "kc", "name": "Keycloak", "issuer": "https://sso.example.com/realms/main/", "client_id": "rubin",
      "client_secret": "a-real-secret"}  # fmt: skip


def test_providers_are_read_from_json_and_normalised(app_env: Callable[..., None]) -> None:
    import json

    app_env(auth_providers=json.dumps([KC, {"id": "github", "kind": "github", "client_id": "x", "client_secret": "y"}]))
    settings = get_settings()
    kc, gh = settings.auth_providers
    assert kc.issuer == "https://sso.example.com/realms/main"  # trailing slash dropped for discovery
    assert kc.scopes == "openid email profile"
    assert gh.name == "GitHub" and gh.scopes == "read:user user:email"
    assert kc.client_secret.get_secret_value() == "a-real-secret"
    assert "a-real-secret" not in repr(settings)  # secrets never show up in logs or tracebacks
    # With a provider configured, local accounts are off unless switched on explicitly.
    assert settings.local_login_default is False and settings.local_signup_default is False


def test_local_accounts_are_the_default_without_providers(app_env: Callable[..., None]) -> None:
    app_env(auth_providers=None, local_login=None, local_signup=None)
    settings = get_settings()
    assert settings.local_login_default and settings.local_signup_default


@pytest.mark.parametrize(
    ("providers", "needle"),
    [
        ('[{"id": "kc", "client_id": "x", "client_secret": "y"}]', "issuer"),
        ('[{"id": "Bad Id", "issuer": "https://a.example", "client_id": "x", "client_secret": "y"}]', "lowercase"),
        ('[{"id": "kc", "issuer": "sso.example.com", "client_id": "x", "client_secret": "y"}]', "http"),
        ('[{"id": "kc", "issuer": "https://a.example", "client_id": "", "client_secret": "y"}]', "CLIENT_ID"),
        ('[{"id": "kc", "issuer": "https://a.example", "client_id": "x", "client_secret": " "}]', "client_secret"),
        (
            '[{"id": "kc", "issuer": "https://a.example", "client_id": "x", "client_secret": "y", "scopes": "email"}]',
            "openid",
        ),
        ('[{"id": "local", "issuer": "https://a.example", "client_id": "x", "client_secret": "y"}]', "reserved"),
        (
            '[{"id": "a", "kind": "github", "client_id": "x", "client_secret": "y"},'
            ' {"id": "a", "kind": "github", "client_id": "x", "client_secret": "y"}]',
            "unique",
        ),
        ('[{"id": "kc", "kind": "saml", "client_id": "x", "client_secret": "y"}]', "AUTH_PROVIDERS"),
        ("not json", "AUTH_PROVIDERS"),
    ],
)
def test_invalid_provider_configuration_stops_the_start(
    app_env: Callable[..., None], providers: str, needle: str
) -> None:
    app_env(auth_providers=providers)
    with pytest.raises(SettingsError) as info:
        get_settings()
    message = str(info.value)
    assert needle.lower() in message.lower(), message
    assert "Traceback" not in message


@pytest.mark.parametrize("secret", ["changeme", "short-but-random", "x" * 10])
def test_weak_or_placeholder_secret_key_is_rejected(app_env: Callable[..., None], secret: str) -> None:
    app_env(secret_key=secret)
    with pytest.raises(SettingsError) as info:
        get_settings()
    assert "SECRET_KEY" in str(info.value)


def test_admin_emails_are_a_comma_separated_list(app_env: Callable[..., None]) -> None:
    app_env(admin_emails=" Boss@Example.com, ops@example.com ,")
    assert get_settings().admin_emails == ["boss@example.com", "ops@example.com"]


def test_several_workers_without_redis_are_refused_at_start(app_env: Callable[..., None]) -> None:
    app_env(workers=4)
    with pytest.raises(SettingsError) as info:
        get_settings()
    assert "WORKERS above 1 needs REDIS_URL" in str(info.value)
    app_env(workers=1)
    assert get_settings().workers == 1
    app_env(workers=4, redis_url="redis://127.0.0.1:6379/0")
    assert get_settings().workers == 4
