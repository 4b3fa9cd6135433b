"""deploy/docker/Dockerfile read without building it (the build itself: test_container.py, marked slow):
hadolint finds nothing, and the promises docs/containers.md makes are in the file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
IGNORE = ROOT / "deploy" / "docker" / "Dockerfile.dockerignore"


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "hadolint"
    command = str(tool) if tool.exists() else (shutil.which("hadolint") or "hadolint")
    return subprocess.run(
        [command, "--no-color", "--failure-threshold", "info", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _final_stage() -> str:
    text = DOCKERFILE.read_text(encoding="utf-8")
    return text[text.rindex("\nFROM ") :]


def test_hadolint_finds_nothing() -> None:
    done = _hadolint(DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_catch_a_root_image(tmp_path: Path) -> None:
    worse = tmp_path / "Dockerfile"
    worse.write_text(DOCKERFILE.read_text(encoding="utf-8").replace("USER 10001:10001", "USER root"), encoding="utf-8")
    done = _hadolint(worse)
    assert done.returncode != 0 and "DL3002" in done.stdout


def test_the_base_image_is_an_argument_defaulting_to_the_usual_registry_image() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.M)
    assert text.count("FROM ${BASE_IMAGE}") == 2  # builder and final stage


def test_the_final_stage_runs_as_a_user_with_a_volume_and_a_healthcheck() -> None:
    final = _final_stage()
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert 'VOLUME ["/data"]' in final and "DATA_DIR=/data" in final and "AUTO_MIGRATE=true" in final
    assert "HEALTHCHECK" in final and "/api/health" in final
    assert "bun" not in final.lower().replace("builder", "")  # no JS runtime at run time


def test_the_ca_bundle_is_a_build_secret_and_nothing_secret_is_copied() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "--mount=type=secret,id=ca" in text
    assert not re.search(r"^(COPY|ADD)\b.*(\.pem|\.crt|\.key|\.env)\b", text, re.M | re.I)
    ignored = {line.strip() for line in IGNORE.read_text(encoding="utf-8").splitlines()}
    assert {".env", "*.key", "*.pem", "data", ".venv", ".web", ".git"} <= ignored
