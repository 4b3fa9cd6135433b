"""Podman plumbing for the container test and benchmark: base image, image build, run, stop.

The image is built from deploy/docker/Dockerfile with BASE_IMAGE = a Debian bookworm image made from the Debian
mirror (scripts/container_base.sh), since no container registry is reachable here. The host's CA bundle goes
into the build as a build secret (PyPI and the npm registry are reached through a TLS-inspecting proxy here);
it never lands in a layer.

This sandbox needs two podman settings a normal machine does not (written to a containers.conf of our own,
CONTAINERS_CONF, so nothing of the machine's configuration changes): runc, because crun refuses the hybrid
cgroup v1/v2 layout here, and default ulimits no higher than this process's own (podman's defaults are above
them, and raising a limit needs CAP_SYS_RESOURCE, which is not granted).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("RUBIN_TEST_BASE_IMAGE", "localhost/rubin-base:bookworm")
IMAGE = "localhost/rubin:test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
NPROC_CAP = 32768  # podman's own default for containers; the runtime cannot go above what podman runs with


def missing_tools() -> list[str]:
    """The commands the container test needs that this machine lacks (scripts/test.sh installs them)."""
    return [tool for tool in ("podman", "mmdebstrap", "runc") if shutil.which(tool) is None]


def containers_conf() -> Path:
    """A containers.conf for this machine: runc, and ulimits this process may grant (see the module doc)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = NPROC_CAP if nproc == resource.RLIM_INFINITY else min(nproc, NPROC_CAP)
    nofile = 1048576 if nofile == resource.RLIM_INFINITY else nofile
    path = Path(tempfile.gettempdir()) / f"rubin-containers-{os.getuid()}.conf"
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        f'runtime = "{os.environ.get("RUBIN_CONTAINER_RUNTIME", "runc")}"\n',
        encoding="utf-8",
    )
    return path


def podman(*args: str, check: bool = True, timeout: float = 1800, capture: bool = True, stderr: bool = False) -> str:
    """Run podman with our containers.conf; its stdout (+ stderr with `stderr`; in the error when it fails)."""
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf())}
    done = subprocess.run(["podman", *args], env=env, capture_output=capture, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])}… failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return (done.stdout or "") + (done.stderr or "" if stderr else "")


def ensure_base_image() -> float:
    """Make the Debian base image unless podman has it; the seconds it took (0 when cached)."""
    if _exists(BASE_IMAGE):
        return 0.0
    t0 = time.monotonic()
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf())}
    subprocess.run([str(ROOT / "scripts" / "container_base.sh"), BASE_IMAGE], env=env, check=True, timeout=1800)
    return time.monotonic() - t0


def _exists(image: str) -> bool:
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf())}
    return subprocess.run(["podman", "image", "exists", image], env=env, check=False).returncode == 0


def build_image(port: int, log: Path, tag: str = IMAGE, root: Path = ROOT, target: str = "") -> float:
    """Build deploy/docker/Dockerfile for `port` on the base image (layers cached by podman); seconds taken.

    `target`: a stage to stop at (e.g. "builder", for its size)."""
    t0 = time.monotonic()
    args = [
        "build", "--format", "docker", "--network", "host", "-f", str(root / "deploy/docker/Dockerfile"),
        "--ignorefile", str(root / "deploy/docker/Dockerfile.dockerignore"),
        "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg", f"FRONTEND_PORT={port}",
        "--secret", f"id=ca,src={CA_BUNDLE}", "-t", tag, *(["--target", target] if target else []), str(root),
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf())}
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(["podman", *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=2400)
    if done.returncode != 0:
        raise RuntimeError(f"the image did not build ({done.returncode}); see {log}")
    return time.monotonic() - t0


def image_size_mb(image: str) -> float:
    """The image's size in MB as podman reports it (all layers, uncompressed)."""
    return float(json.loads(podman("image", "inspect", image))[0]["Size"]) / 1e6


def image_config(image: str) -> dict[str, object]:
    """The image's config (User, Cmd, Env, Volumes, Healthcheck...)."""
    data = json.loads(podman("image", "inspect", image))[0]
    config: dict[str, object] = dict(data.get("Config") or {})
    config["Healthcheck"] = data.get("Healthcheck") or config.get("Healthcheck")
    return config


def run_container(name: str, env: dict[str, str], volume: str, image: str = IMAGE) -> str:
    """Start the image detached on the host's network with a named data volume; the container id."""
    podman("rm", "-f", name, check=False)
    flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    return podman("run", "-d", "--name", name, "--network", "host", "-v", f"{volume}:/data", *flags, image).strip()


def remove(name: str, volume: str | None = None) -> None:
    """Remove the container (and its volume); never fails."""
    podman("rm", "-f", "-t", "5", name, check=False)
    if volume:
        podman("volume", "rm", "-f", volume, check=False)


def logs(name: str) -> str:
    """The container's output so far."""
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf())}
    done = subprocess.run(["podman", "logs", name], env=env, capture_output=True, text=True, check=False)
    return done.stdout + done.stderr
