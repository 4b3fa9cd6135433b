"""Every error code the services raise is answered in one place (core/errors.py): an HTTP status, an
OpenAI-shaped body, and a message the UI can translate."""

from __future__ import annotations

import ast
from pathlib import Path

from rubin_app import i18n
from rubin_app.core.errors import ERRORS, http_status, openai_error

PKG = Path(__file__).resolve().parents[2] / "rubin_app"
RAISED_BY = ("InputError", "LimitExceeded", "LLMError", "ApiError")
# Codes of the sign-in forms and the admin pages: shown in the UI only, never answered by an API.
UI_ONLY_PREFIXES = ("login", "password", "signup", "bad_email", "bad_name", "email_taken", "bad_credentials",
                    "locked_out", "local_login_off", "bad_origin", "unknown_provider", "provider_unavailable",
                    "no_email", "wrong_password", "not_local_account", "last_admin", "last_login_method",
                    "confirm_email", "slow_down", "bad_setting", "name_too_long", "empty_name")  # fmt: skip


def _raised_codes() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in RAISED_BY
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.setdefault(node.args[0].value, str(path.relative_to(PKG)))
    return found


def test_every_raised_code_has_an_http_answer() -> None:
    raised = _raised_codes()
    assert len(raised) > 20, "the scan finds the raise sites"
    missing = sorted(f"{code} ({where})" for code, where in raised.items()
                     if code not in ERRORS and not code.startswith(UI_ONLY_PREFIXES))  # fmt: skip
    assert not missing, "codes without an entry in core/errors.ERRORS:\n" + "\n".join(missing)


def test_limits_are_429_and_model_server_failures_are_5xx() -> None:
    assert {
        http_status(c) for c in ("rate_limit", "ip_rate_limit", "key_rate_limit", "concurrency", "token_quota")
    } == {429}
    assert {http_status(c) for c in ("unreachable", "server", "dropped", "malformed")} == {502}
    assert (http_status("timeout"), http_status("overloaded"), http_status("unknown_model")) == (504, 503, 404)
    body = openai_error("unknown_model", "no such model", param="model")
    assert body == {"error": {"message": "no such model", "type": "invalid_request_error", "param": "model",
                              "code": "model_not_found"}}  # fmt: skip


def test_codes_a_user_can_meet_in_the_ui_are_translated() -> None:
    ui_codes = {"unreachable", "timeout", "overloaded", "rate_limit", "token_quota", "unknown_model", "save_failed"}
    for code in ui_codes:
        assert f"err_{code}" in i18n.EN and f"err_{code}" in i18n.CATALOGS["ru"], code
