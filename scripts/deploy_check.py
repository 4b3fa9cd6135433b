"""Check a Kubernetes overlay before it is applied: its secrets, then the rendered manifests.

    python scripts/deploy_check.py deploy/k8s/overlays/scaled [-o rendered.yaml] [--kube-version 1.30.0]

Refuses (exit 2, one line per problem, naming the setting, never printing a value) when the overlay's
secrets.env is missing, lacks a name its secrets.env.example lists, keeps a placeholder (change-me, the
example's value), or holds a value Rubin would refuse at start (a short SECRET_KEY, an ENCRYPTION_KEY that is
not 32 base64 bytes, a URL of the wrong kind); when a secret name sits in a ConfigMap; or when a rendered object
does not match the Kubernetes schemas (PyPI kubernetes-validate, if installed). `-o FILE` is written only when
every check passes (a refusal leaves it as it was); without it the manifests go to stdout.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

SECRETS_FILE = "secrets.env"
EXAMPLE_FILE = "secrets.env.example"
PLACEHOLDERS = ("change-me", "changeme", "changethis", "your-secret")
SECRET_NAMES = {"SECRET_KEY", "ENCRYPTION_KEY", "METRICS_TOKEN", "DATABASE_URL", "REDIS_URL", "LOCALAI_API_KEY",
                "AUTH_PROVIDERS", "TLS_KEY_PASSWORD"}  # fmt: skip
DEFAULT_KUBE_VERSION = "1.30.0"
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}  # checked by tests/deploy, not by the schemas


class Refused(Exception):
    """The overlay must not be applied; the message names every problem."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as kustomize reads them (comments and blank lines skipped, no quoting)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise Refused(f"{path}: line {number} is not NAME=value")
        values[name.strip()] = value
    return values


def _value_problem(name: str, value: str) -> str | None:
    """Why Rubin would refuse this secret value at start (None: fine). Never quotes the value."""
    if name == "SECRET_KEY" and len(value) < 32:
        return "must be at least 32 characters (openssl rand -hex 32)"
    if name == "METRICS_TOKEN" and len(value) < 16:
        return "must be at least 16 characters (openssl rand -hex 24)"
    if name == "ENCRYPTION_KEY":
        for key in value.split(","):
            try:
                raw = base64.b64decode(key.strip(), validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                return "must be base64 of 32 random bytes, comma-separated after a rotation (openssl rand -base64 32)"
    if name == "DATABASE_URL" and not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return "must be a PostgreSQL URL (postgresql://user:password@host:5432/db) for several replicas"
    if name == "REDIS_URL" and not value.startswith(("redis://", "rediss://")):
        return "must be a redis:// or rediss:// URL"
    return None


def check_secrets(overlay: Path) -> list[str]:
    """The names the overlay's secrets.env lacks or gets wrong (empty: fine)."""
    secrets_path, example_path = overlay / SECRETS_FILE, overlay / EXAMPLE_FILE
    if not secrets_path.is_file():
        hint = f" (copy {example_path.name} and fill it in)" if example_path.is_file() else ""
        return [f"{secrets_path}: missing{hint}; nothing was rendered or written"]
    given = read_env_file(secrets_path)
    example = read_env_file(example_path) if example_path.is_file() else {}
    problems = [f"{name}: missing from {secrets_path}" for name in example if name not in given]
    for name, value in given.items():
        if not value.strip():
            problems.append(f"{name}: empty in {secrets_path}")
        elif value == example.get(name) or any(mark in value.lower() for mark in PLACEHOLDERS):
            problems.append(f"{name}: still a placeholder in {secrets_path}; put the real value there")
        elif value != value.strip():
            problems.append(f"{name}: has spaces around it in {secrets_path}")
        elif problem := _value_problem(name, value):
            problems.append(f"{name}: {problem}")
    return problems


def render(overlay: Path) -> list[dict[str, Any]]:
    """The overlay's objects, rendered by `kubectl kustomize` (or a `kustomize` binary)."""
    if kubectl := shutil.which("kubectl"):
        command = [kubectl, "kustomize", str(overlay)]
    elif kustomize := shutil.which("kustomize"):
        command = [kustomize, "build", str(overlay)]
    else:
        raise Refused("neither kubectl nor kustomize is installed (Debian: apt-get install kubernetes-client)")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.strip() and "Warning:" not in line]
        raise Refused(f"kustomize could not render {overlay}: {' '.join(errors)[:500]}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def check_objects(objects: list[dict[str, Any]], kube_version: str) -> list[str]:
    """Secrets kept out of ConfigMaps and env values; every built-in kind valid against its schema."""
    problems: list[str] = []
    for obj in objects:
        kind, name = obj.get("kind", "?"), obj.get("metadata", {}).get("name", "?")
        if kind == "ConfigMap":
            problems += [f"{key}: in ConfigMap {name}; secrets belong in {SECRETS_FILE}" for key in obj.get("data", {})
                         if key in SECRET_NAMES]  # fmt: skip
        for container in _containers(obj):
            problems += [
                f"{env['name']}: written into {kind} {name}; reference the Secret instead"
                for env in container.get("env", []) if env.get("name") in SECRET_NAMES and "value" in env
            ]  # fmt: skip
    try:
        import kubernetes_validate
    except ImportError:
        print("note: kubernetes-validate is not installed: the schemas were not checked", file=sys.stderr)
        return problems
    for obj in objects:
        if (obj.get("apiVersion"), obj.get("kind")) in CRDS:
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            problems.append(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{obj.get('kind')} {obj.get('apiVersion')}: no schema in Kubernetes {kube_version}")
    return problems


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if obj.get("kind") in ("Deployment", "Job", "StatefulSet") else {}
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (a temporary file next to it, then a rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Check an overlay; print or write its manifests when every check passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlay", type=Path, help="e.g. deploy/k8s/overlays/scaled")
    parser.add_argument("-o", "--output", type=Path, help="write the rendered manifests here (only when they pass)")
    parser.add_argument("--kube-version", default=DEFAULT_KUBE_VERSION, help="the cluster's Kubernetes version")
    args = parser.parse_args(argv)
    try:
        if not (args.overlay / "kustomization.yaml").is_file():
            raise Refused(f"{args.overlay}: no kustomization.yaml (give an overlay such as deploy/k8s/overlays/single)")
        if problems := check_secrets(args.overlay):
            raise Refused("\n".join(problems))
        objects = render(args.overlay)
        if problems := check_objects(objects, args.kube_version):
            raise Refused("\n".join(problems))
    except Refused as exc:
        print(f"refused: {args.overlay} must not be applied:\n{exc}", file=sys.stderr)
        return 2
    text = yaml.safe_dump_all(objects, sort_keys=False)
    if args.output:
        write_atomically(args.output, text)
        print(f"{len(objects)} objects checked and written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        print(f"{len(objects)} objects checked", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
