#!/usr/bin/env bash
# Build a Debian bookworm base image from the Debian package mirror (no container registry needed) and import
# it into podman, for the Dockerfile's BASE_IMAGE argument:
#   scripts/container_base.sh [image-name]      default localhost/rubin-base:bookworm
# Skipped when the image already exists (REBUILD=1 forces it). Needs mmdebstrap and podman (Debian packages).
# It holds what deploy/docker/Dockerfile needs from python:3.11-slim-bookworm: python3 (3.11), venv, CA certs.
set -euo pipefail
IMAGE="${1:-localhost/rubin-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
step() { printf '\033[1;34m[base]\033[0m %s\n' "$*"; }

if [ "${REBUILD:-0}" != 1 ] && podman image exists "$IMAGE"; then
  step "$IMAGE exists (REBUILD=1 to make it again)"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "mmdebstrap is needed: apt-get install mmdebstrap" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
step "debootstrapping bookworm (minbase + python3) from $MIRROR"
# No documentation, manuals or locales; no apt lists left behind (the image is only a base for the Dockerfile).
mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
  bookworm "$tmp/rootfs.tar" \
  "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SECURITY bookworm-security main"
step "importing it as $IMAGE ($(du -h "$tmp/rootfs.tar" | cut -f1))"
podman import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$tmp/rootfs.tar" "$IMAGE" >/dev/null
step "done: $IMAGE"
