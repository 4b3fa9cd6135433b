"""The message catalogs: complete in every language, every key used, dates and times localized."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rubin_app import i18n

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*ROOT.joinpath("rubin_app").rglob("*.py"), *ROOT.joinpath("assets").glob("*.js")]
# Keys looked up by building their name: f"err_{code}" (service error codes), f"status_{status}" and
# f"info_{code}" (the login page's ?info=<code>).
DYNAMIC_PREFIXES = ("err_", "status_", "info_")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_interface_speaks_english_and_russian() -> None:
    assert {"en", "ru"} <= set(i18n.CATALOGS)
    assert i18n.LANGUAGE_NAMES["ru"] == "Русский"


@pytest.mark.parametrize("lang", sorted(i18n.CATALOGS))
def test_every_catalog_has_every_key_with_the_same_placeholders(lang: str) -> None:
    catalog = i18n.CATALOGS[lang]
    assert sorted(i18n.KEYS - set(catalog)) == [], f"{lang}.json lacks keys"
    assert sorted(set(catalog) - i18n.KEYS) == [], f"{lang}.json has keys en.json does not"
    for key, text in catalog.items():
        assert isinstance(text, str) and text.strip(), f"{lang}.json: {key} is empty"
        assert _fields(text) == _fields(i18n.EN[key]), f"{lang}.json: {key} has other placeholders than en.json"


def test_every_key_is_used_in_the_code() -> None:
    code = "\n".join(path.read_text(encoding="utf-8") for path in SOURCES)
    literals = set(re.findall(r"""["']([A-Za-z0-9_]+)["']""", code)) | set(re.findall(r"info=([a-z_]+)", code))
    unused = []
    for key in i18n.KEYS - {"_language_name"}:
        if key in literals:
            continue
        prefix = next((p for p in DYNAMIC_PREFIXES if key.startswith(p)), None)
        if prefix and key[len(prefix) :] in literals:  # e.g. err_timeout <- LLMError("timeout")
            continue
        unused.append(key)
    assert sorted(unused) == []


def test_a_key_missing_from_a_catalog_falls_back_to_english() -> None:
    assert i18n.t("new_chat", "ru") == "Новый чат"
    assert i18n.t("new_chat", "xx") == "New chat"
    assert i18n.t("no_such_key", "ru") == "no_such_key"
    assert "32000" in i18n.t("err_message_too_long", "ru", length=40000, limit=32000)


def test_browser_languages_pick_the_first_supported_one() -> None:
    assert i18n.pick_language("de-DE,ru;q=0.8,en;q=0.5") == "ru"
    assert i18n.pick_language("fr") == "en"
    assert i18n.pick_language("") == "en"


def test_relative_times_and_dates_are_in_the_interface_language() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert i18n.when(now - timedelta(seconds=10), "en", now) == "just now"
    assert i18n.when(now - timedelta(seconds=10), "ru", now) == "только что"
    assert i18n.when(now - timedelta(minutes=5), "en", now) == "5 minutes ago"
    assert i18n.when(now - timedelta(minutes=5), "ru", now) == "5 минут назад"
    assert i18n.when(now - timedelta(days=2), "ru", now) == "2 дня назад"
    assert i18n.when(datetime(2026, 3, 8, 9, 0), "en", now) == "Mar 8, 2026"  # naive = UTC, as stored
    assert i18n.when(datetime(2026, 3, 8, 9, 0), "ru", now) == "8 мар. 2026\u202fг."
    assert i18n.when(None, "en", now) == ""


def test_exact_moments_are_localized_and_say_utc() -> None:
    moment = datetime(2026, 3, 8, 9, 5)  # naive = UTC, as stored
    assert i18n.stamp(moment, "en") == "3/8/26, 9:05\u202fAM UTC"
    assert i18n.stamp(moment, "ru") == "08.03.2026, 09:05 UTC"
    assert i18n.stamp(None, "ru") == ""
