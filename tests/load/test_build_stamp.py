"""Build once, start from the build: scripts/run.sh rebuilds only when a source or a baked setting changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rubin_app import build_stamp
from rubin_app.config import Settings


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout with the build's inputs and a finished build (as `container build` leaves it)."""
    (tmp_path / "rubin_app" / "pages").mkdir(parents=True)
    (tmp_path / "rubin_app" / "pages" / "chat.py").write_text("PAGE = 'chat'\n")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "rubin.js").write_text("window.rubin = {};\n")
    (tmp_path / "rxconfig.py").write_text("config = None\n")
    (tmp_path / "reflex.lock").mkdir()
    (tmp_path / "reflex.lock" / "bun.lock").write_text("{}\n")
    (tmp_path / "requirements.txt").write_text("reflex==0.10.1\n")
    build = build_stamp.build_dir(tmp_path)
    build.mkdir(parents=True)
    (build / "index.html").write_text("<html></html>")
    return tmp_path


def built(settings: Settings, root: Path) -> None:
    build_stamp.save(build_stamp.compute(settings, root), root)


def test_nothing_changed_starts_from_the_build(checkout: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    built(settings, checkout)
    assert build_stamp.needs_build(settings, checkout)[0] is False
    # Byte code, Reflex's asset symlinks and the build itself are no inputs.
    (checkout / "rubin_app" / "pages" / "__pycache__").mkdir()
    (checkout / "rubin_app" / "pages" / "__pycache__" / "chat.cpython-311.pyc").write_bytes(b"\0")
    (checkout / "assets" / "external").mkdir()
    (checkout / "assets" / "external" / "x.js").write_text("1")
    (build_stamp.build_dir(checkout) / "extra.js").write_text("1")
    assert build_stamp.needs_build(settings, checkout)[0] is False


@pytest.mark.parametrize(
    "change",
    ["rubin_app/pages/chat.py", "rubin_app/i18n/ru.json", "assets/rubin.js", "rxconfig.py", "reflex.lock/bun.lock",
     "requirements.txt"],
)  # fmt: skip
def test_a_changed_or_new_source_rebuilds(checkout: Path, make_settings: Callable[..., Settings], change: str) -> None:
    settings = make_settings()
    built(settings, checkout)
    path = checkout / change
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((path.read_text() if path.exists() else "") + "# changed\n")
    needed, stamp = build_stamp.needs_build(settings, checkout)
    assert needed is True
    build_stamp.save(stamp, checkout)  # once rebuilt, the next start uses it
    assert build_stamp.needs_build(settings, checkout)[0] is False


@pytest.mark.parametrize(
    "setting", [{"frontend_port": 3100}, {"api_url": "https://rubin.example"}, {"public_url": "https://rubin.example"}]
)
def test_a_changed_baked_setting_rebuilds(
    checkout: Path, make_settings: Callable[..., Settings], setting: dict[str, object]
) -> None:
    built(make_settings(), checkout)
    assert build_stamp.needs_build(make_settings(**setting), checkout)[0] is True
    # A setting the page does not carry changes nothing.
    assert build_stamp.needs_build(make_settings(rate_limit_rpm=7), checkout)[0] is False


def test_no_build_or_no_stamp_builds(checkout: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert build_stamp.needs_build(settings, checkout)[0] is True  # a build without a stamp: unknown inputs
    built(settings, checkout)
    (build_stamp.build_dir(checkout) / "index.html").unlink()
    assert build_stamp.needs_build(settings, checkout)[0] is True
