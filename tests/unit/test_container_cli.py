"""`python -m rubin_app.container`: the check that the prebuilt frontend fits the settings it is served with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rubin_app import container


def test_a_build_for_the_serving_port_fits() -> None:
    assert container.address_mismatch("ws://localhost:3000/_event", frontend_port=3000, api_url="") is None
    fits = container.address_mismatch(
        "wss://chat.example.com/_event", frontend_port=3000, api_url="https://chat.example.com/"
    )
    assert fits is None


def test_another_port_or_public_url_is_named_with_the_fix() -> None:
    problem = container.address_mismatch("ws://localhost:3000/_event", frontend_port=8080, api_url="")
    assert problem and "ws://localhost:8080/_event" in problem and "--build-arg FRONTEND_PORT" in problem
    problem = container.address_mismatch("", frontend_port=3000, api_url="")
    assert problem and "(none)" in problem


def test_check_reads_the_built_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env_json = tmp_path / "env.json"
    monkeypatch.setattr(container, "ENV_JSON", env_json)
    monkeypatch.setattr(container, "BUILD_DIR", tmp_path)
    assert container.main(["check"]) == 1  # no build at all
    env_json.write_text(json.dumps({"EVENT": "ws://localhost:1/_event"}), encoding="utf-8")
    assert container.main(["check"]) == 1  # a build for another port
    assert "ws://localhost:1/_event" in capsys.readouterr().err
    assert container.main(["nonsense"]) == 2
