"""Deployment artefacts checked for real: the container image (podman) and the compose file."""
