"""`python -m rubin_app.container`: the check that the prebuilt frontend fits the settings it is served with."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rubin_app import container
from rubin_app.config import Settings
from tests.fakes.certs import TestCA


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


def test_a_build_made_for_tls_served_by_rubin_carries_the_public_origin(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """scripts/run.sh builds with API_URL = what `serve` then expects, also with TLS_CERT_FILE (wss:// on PUBLIC_URL's
    port, not localhost: the page would drop the port for https)."""
    issued = TestCA(tmp_path / "ca").issue("localhost")
    plain = make_settings(frontend_port=3100)
    assert container.baked_api_url(plain) == ""
    tls = make_settings(
        tls_cert_file=issued.cert, tls_key_file=issued.key, public_url="https://chat.example:8443", frontend_port=8443
    )
    assert container.baked_api_url(tls) == "https://chat.example:8443"
    built = "wss://chat.example:8443/_event"
    assert container.address_mismatch(built, frontend_port=8443, api_url=container.baked_api_url(tls)) is None
    given = make_settings(api_url="https://api.example")
    assert container.baked_api_url(given) == "https://api.example"
