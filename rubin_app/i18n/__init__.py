"""Interface strings: one JSON catalog per language in this folder, loaded once at import.

`en.json` is the reference: its keys are the key set, and every other catalog must have exactly
those keys with the same `{placeholders}` (tests/unit/test_i18n.py checks it, and that every key
is used). Adding a language is adding one file, e.g. `de.json`; its `_language_name` is what the
language picker shows. Dates and relative times are formatted by Babel in the same language.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from babel.dates import format_date, format_datetime, format_timedelta
from babel.units import format_unit

CATALOG_DIR = Path(__file__).parent
DEFAULT_LANGUAGE = "en"


def _load() -> dict[str, dict[str, str]]:
    catalogs = {}
    for path in sorted(CATALOG_DIR.glob("*.json")):
        with path.open(encoding="utf-8") as f:
            catalogs[path.stem] = json.load(f)
    if DEFAULT_LANGUAGE not in catalogs:
        raise RuntimeError(f"the reference catalog {DEFAULT_LANGUAGE}.json is missing from {CATALOG_DIR}")
    return catalogs


CATALOGS: dict[str, dict[str, str]] = _load()
EN: dict[str, str] = CATALOGS[DEFAULT_LANGUAGE]
KEYS: frozenset[str] = frozenset(EN)
# English first, then the others by code: what the language picker lists.
LANGUAGES: tuple[str, ...] = (DEFAULT_LANGUAGE, *sorted(c for c in CATALOGS if c != DEFAULT_LANGUAGE))
LANGUAGE_NAMES: dict[str, str] = {code: CATALOGS[code]["_language_name"] for code in LANGUAGES}


def pick_language(accept_language: str) -> str:
    """The best supported language for an Accept-Language header / navigator.languages list."""
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in CATALOGS:
            return code
    return DEFAULT_LANGUAGE


def t(key: str, lang: str = DEFAULT_LANGUAGE, **params: object) -> str:
    """Translate a key; unknown keys fall back to English, then to the key itself."""
    text = CATALOGS.get(lang, EN).get(key) or EN.get(key) or key
    return text.format(**params) if params else text


def when(value: datetime | None, lang: str = DEFAULT_LANGUAGE, now: datetime | None = None) -> str:
    """A past moment for people: "5 minutes ago" / "5 минут назад" within a week, else a localized date."""
    if value is None:
        return ""
    if value.tzinfo is None:  # the database stores UTC without a zone
        value = value.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    delta = value - now
    if abs(delta.total_seconds()) < 45:
        return t("just_now", lang)
    if -delta.total_seconds() < 7 * 86400:
        return format_timedelta(delta, add_direction=True, locale=lang, threshold=1.0)
    return format_date(value, "medium", locale=lang)


def stamp(value: datetime | None, lang: str = DEFAULT_LANGUAGE) -> str:
    """An exact moment (audit log), localized: "Mar 8, 2026, 9:00 AM UTC" / "08.03.2026, 09:00 UTC"."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value, "short", tzinfo=UTC, locale=lang) + " UTC"


def days(count: int, lang: str = DEFAULT_LANGUAGE) -> str:
    """A number of days with its plural: "1 day", "30 days" / "1 день", "30 дней"."""
    return format_unit(count, "duration-day", length="long", locale=lang)
