"""Draw Rubin AI's app icons (PWA, Apple touch icon, favicon) from one vector design.

    python scripts/make_icons.py        # writes assets/icons/*.png, assets/icons/icon.svg and favicon.ico

The mark is a faceted ruby-cut gem in white on the app's accent colour (Radix "ruby"). The SVGs are
rasterized by the Debian Chromium the browser tests use (through Playwright, no downloaded browser),
so no imaging library is needed; the favicon is an ICO container around PNGs.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ICONS = ROOT / "assets" / "icons"
CHROMIUM = "/usr/bin/chromium"
RUBY_9, RUBY_11 = "#e54666", "#ca244d"  # Radix ruby 9 and 11: the accent and its deeper shade


def gem(scale: float) -> str:
    """The gem, drawn on a 512 grid around (256, 256), scaled about the centre."""
    facets = [  # (points, fill): crown facets light, pavilion facets a little pinker
        ("176,168 216,132 296,132 336,168", "#ffffff"),  # table
        ("136,204 176,168 216,204", "#ffe4ea"),
        ("176,168 336,168 296,204 216,204", "#fff4f6"),
        ("296,204 336,168 376,204", "#ffd3de"),
        ("136,204 216,204 256,388", "#ffdbe3"),
        ("216,204 296,204 256,388", "#ffffff"),
        ("296,204 376,204 256,388", "#ffc2d1"),
    ]
    body = "".join(f'<polygon points="{p}" fill="{f}"/>' for p, f in facets)
    outline = (
        '<polygon points="216,132 296,132 376,204 256,388 136,204" fill="none" stroke="#ffffff" '
        'stroke-width="6" stroke-linejoin="round"/>'
    )
    return f'<g transform="translate(256 256) scale({scale}) translate(-256 -260)">{body}{outline}</g>'


def svg(kind: str) -> str:
    """kind: "any" (rounded tile, transparent corners), "maskable" / "apple" (full-bleed square)."""
    grad = (
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{RUBY_9}"/><stop offset="1" stop-color="{RUBY_11}"/></linearGradient></defs>'
    )
    if kind == "any":
        tile, scale = '<rect x="16" y="16" width="480" height="480" rx="108" fill="url(#g)"/>', 1.0
    else:  # maskable: everything that matters inside the central circle of radius 0.4 x size
        tile, scale = '<rect width="512" height="512" fill="url(#g)"/>', 0.78 if kind == "maskable" else 0.9
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">{grad}{tile}{gem(scale)}</svg>'


def ico(pngs: list[tuple[int, bytes]]) -> bytes:
    """An ICO file holding PNG images (supported by every current browser)."""
    head = struct.pack("<HHH", 0, 1, len(pngs))
    offset = 6 + 16 * len(pngs)
    entries, data = b"", b""
    for size, png in pngs:
        entries += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(png), offset + len(data))
        data += png
    return head + entries + data


def main() -> int:
    ICONS.mkdir(parents=True, exist_ok=True)
    (ICONS / "icon.svg").write_text(svg("any") + "\n", encoding="utf-8")
    targets = [
        ("icon-192.png", "any", 192),
        ("icon-512.png", "any", 512),
        ("icon-maskable-192.png", "maskable", 192),
        ("icon-maskable-512.png", "maskable", 512),
        ("apple-touch-icon.png", "apple", 180),
        ("favicon-32.png", "any", 32),
    ]
    favicon: list[tuple[int, bytes]] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for name, kind, size in [*targets, ("", "any", 16), ("", "any", 48)]:
            page = browser.new_page(viewport={"width": size, "height": size}, device_scale_factor=1)
            image = svg(kind).replace("<svg ", f'<svg width="{size}" height="{size}" ', 1)
            page.set_content(f"<html><body style='margin:0;background:transparent'>{image}</body></html>")
            png = page.screenshot(omit_background=True, clip={"x": 0, "y": 0, "width": size, "height": size})
            page.close()
            if name:
                (ICONS / name).write_bytes(png)
                print(f"wrote assets/icons/{name} ({size}x{size})")
            if size in (16, 32, 48):
                favicon.append((size, png))
        browser.close()
    (ICONS / "favicon.ico").write_bytes(ico(sorted(favicon)))
    print("wrote assets/icons/favicon.ico (16, 32, 48)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
