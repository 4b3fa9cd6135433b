"""Installable app (PWA): the <head> tags for the web manifest, icons, theme colours and the service worker.

The files themselves are static, served from assets/ at the site root: manifest.webmanifest, sw.js (the
service worker), offline.html, pwa.js (registers the worker, checks GET /api/version and shows the
"new version — reload" prompt) and icons/ (drawn by scripts/make_icons.py). pwa.js builds its prompt
outside React, on every page, so its strings travel in a <meta> tag, taken from the catalogs here.
"""

from __future__ import annotations

import json

import reflex as rx

from rubin_app import i18n

# Radix "sand" 1 (the page's background) in light and dark: the browser's title bar matches the page.
THEME_LIGHT = "#fdfdfc"
THEME_DARK = "#111110"
PROMPT_KEYS = ("pwa_update_available", "pwa_update_reload", "pwa_update_later")


def prompt_strings() -> str:
    """The update prompt's strings in every language, as JSON for pwa.js."""
    return json.dumps(
        {lang: {key: i18n.t(key, lang) for key in PROMPT_KEYS} for lang in i18n.LANGUAGES},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def pwa_head() -> list[rx.Component]:
    """Head tags: manifest, icons, Apple meta tags, theme colours, strings and the pwa.js script."""
    return [
        rx.el.link(rel="manifest", href="/manifest.webmanifest"),
        rx.el.link(rel="icon", href="/icons/favicon.ico", sizes="32x32"),
        rx.el.link(rel="icon", href="/icons/icon.svg", type="image/svg+xml"),
        rx.el.link(rel="apple-touch-icon", href="/icons/apple-touch-icon.png"),
        # `media` goes through custom_attrs: as a plain prop Reflex would take it for a style.
        rx.el.meta(name="theme-color", content=THEME_LIGHT, custom_attrs={"media": "(prefers-color-scheme: light)"}),
        rx.el.meta(name="theme-color", content=THEME_DARK, custom_attrs={"media": "(prefers-color-scheme: dark)"}),
        rx.el.meta(name="application-name", content="Rubin AI"),
        rx.el.meta(name="mobile-web-app-capable", content="yes"),
        rx.el.meta(name="apple-mobile-web-app-capable", content="yes"),
        rx.el.meta(name="apple-mobile-web-app-title", content="Rubin"),
        rx.el.meta(name="apple-mobile-web-app-status-bar-style", content="default"),
        rx.el.meta(name="rubin-pwa-text", content=prompt_strings()),
        rx.el.script(src="/pwa.js", defer=True),
    ]
