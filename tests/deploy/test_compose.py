"""deploy/compose/compose.yaml, checked offline: the compose-spec JSON schema (check-jsonschema's vendored copy),
podman-compose's own resolution of each profile, and the rules an operator relies on (healthchecks behind every
`service_healthy`, pinned images, declared volumes, no secret written into the file, a .env example that names
only real settings)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rubin_app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
ENV_EXAMPLE = ROOT / "deploy" / "compose" / ".env.example"
BIN = Path(sys.executable).parent
ENV = {"POSTGRES_PASSWORD": "pw-for-the-test", "LOCALAI_URL": "http://localai.example:8080"}


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _resolved(profile: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose model podman-compose resolves for a profile (variables interpolated, profile applied)."""
    done = subprocess.run(
        [_tool("podman-compose"), "-f", str(COMPOSE), "--profile", profile, "config"],
        capture_output=True, text=True, timeout=120, check=False, cwd=COMPOSE.parent,
        env={"PATH": "/usr/bin:/bin", **(ENV if env is None else env)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(yaml.safe_load(done.stdout))


def _raw() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))


def test_the_compose_file_follows_the_compose_spec() -> None:
    done = _schema_check(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_catches_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    text = COMPOSE.read_text(encoding="utf-8").replace("condition: service_healthy", "condition: healthy", 1)
    broken.write_text(text.replace("restart: unless-stopped", "restart: sometimes", 1), encoding="utf-8")
    done = _schema_check(broken)
    assert done.returncode != 0
    assert "healthy" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("profile", "services"),
    [("full", {"rubin", "postgres", "redis", "localai"}), ("embedded", {"rubin-embedded"})],
)
def test_each_profile_resolves_to_its_services(profile: str, services: set[str]) -> None:
    model = _resolved(profile)
    assert set(model["services"]) == services
    rubin = model["services"]["rubin" if profile == "full" else "rubin-embedded"]
    assert rubin["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert any(str(v).endswith(":/data") for v in rubin["volumes"])
    env = rubin["environment"]
    if profile == "full":
        assert env["DATABASE_URL"] == "postgresql+psycopg://rubin:pw-for-the-test@postgres:5432/rubin"
        assert env["REDIS_URL"] == "redis://redis:6379/0" and env["LOCALAI_URL"] == "http://localai:8080"
    else:
        assert env["DATABASE_URL"] == "" and env["REDIS_URL"] == ""  # SQLite in the volume, no Redis


def test_the_embedded_profile_needs_nothing_of_the_full_one() -> None:
    model = _resolved("embedded", env={})
    assert set(model["services"]) == {"rubin-embedded"}


def test_services_wait_for_healthy_dependencies_on_pinned_images() -> None:
    services = _raw()["services"]
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert rule["condition"] == "service_healthy", (name, dependency)
            assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck for {name} to wait on"
        assert "healthcheck" in service, f"{name} has no healthcheck"
        image = str(service.get("image", ""))
        if not image.startswith("${RUBIN_IMAGE"):
            assert re.search(r":v?\d+\.\d+(\.\d+)?(-[a-z0-9]+)?$", image), f"{name}: {image} is not pinned"
    assert services["localai"]["image"].startswith("docker.io/localai/localai:v")


def test_every_named_volume_is_declared_and_no_secret_is_written_in_the_file() -> None:
    raw = _raw()
    declared = set(raw["volumes"])
    for name, service in raw["services"].items():
        for mount in service.get("volumes") or []:
            source = str(mount).split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|_KEY$", key):
                assert str(value).startswith("${"), f"{name}: {key} is written in the file"


def test_the_env_example_names_only_real_settings_and_compose_variables() -> None:
    settings = {name.upper() for name in Settings.model_fields}
    variables = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text(encoding="utf-8")))
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(encoding="utf-8"), re.M)
    assert names
    unknown = sorted(set(names) - settings - variables)
    assert not unknown, f".env.example names what neither Rubin nor compose.yaml reads: {unknown}"
