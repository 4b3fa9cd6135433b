"""The Kubernetes manifests (deploy/k8s) as an operator would check them before `kubectl apply -k`.

Each overlay is rendered by `kubectl kustomize` (Debian's kubernetes-client) from a copy of deploy/k8s with a
secrets.env of real-looking values; every built-in object is checked against the Kubernetes schemas (PyPI
kubernetes-validate, strict: unknown fields fail) of the oldest and newest versions it ships, the
ServiceMonitor (a CRD) against the fields the Prometheus Operator defines. Then what matters when it runs:
probes, no sticky sessions, the migration Job, secrets referenced and never written into a manifest, and
`scripts/deploy_check.py` refusing missing or placeholder secrets without writing anything.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("single", "scaled")
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
SECRET_NAMES = {"SECRET_KEY", "ENCRYPTION_KEY", "METRICS_TOKEN", "DATABASE_URL", "REDIS_URL"}
IMAGE = "registry.example.com/rubin-ai:1.0.0"

# The ServiceMonitor fields Rubin uses, as the Prometheus Operator's CRD (monitoring.coreos.com/v1) defines them.
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "authorization": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "type": {"type": "string"},
                                    "credentials": {
                                        "type": "object",
                                        "required": ["key"],
                                        "additionalProperties": False,
                                        "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def real_secrets() -> dict[str, str]:
    """Values an operator would generate (what secrets.env.example asks for)."""
    return {
        "SECRET_KEY": secrets.token_hex(32),
        "ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "METRICS_TOKEN": secrets.token_hex(24),
        "DATABASE_URL": f"postgresql://rubin:{secrets.token_hex(8)}@postgres.db:5432/rubin",
        "REDIS_URL": "redis://redis.db:6379/0",
    }


def write_secrets(overlay: Path, values: dict[str, str]) -> None:
    (overlay / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def example_names(overlay: str) -> list[str]:
    lines = (K8S / "overlays" / overlay / "secrets.env.example").read_text().splitlines()
    return [line.partition("=")[0] for line in lines if line and not line.startswith("#")]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of deploy/k8s whose overlays have a secrets.env with real-looking values."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    for overlay in OVERLAYS:
        values = real_secrets()
        write_secrets(copy / "overlays" / overlay, {k: v for k, v in values.items() if k in example_names(overlay)})
    return copy


def kustomize(overlay: Path) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: scripts/test.sh installs Debian's kubernetes-client"
    return subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)


def render(tree: Path, overlay: str) -> list[dict[str, Any]]:
    done = kustomize(tree / "overlays" / overlay)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def container(obj: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(obj)["containers"]
    assert isinstance(only, dict)
    return only


def by_name(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def settings_of(objects: list[dict[str, Any]], workload: dict[str, Any]) -> dict[str, str]:
    """The ConfigMap data a workload's container reads (envFrom)."""
    (name,) = [s["configMapRef"]["name"] for s in container(workload)["envFrom"] if "configMapRef" in s]
    return dict(by_name(objects, "ConfigMap", name)["data"])


# --------------------------------------------------------------------------- rendering and schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_and_every_object_matches_the_kubernetes_schemas(tree: Path, overlay: str) -> None:
    objects = render(tree, overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap", "Secret"} <= kinds
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":
            jsonschema.validate(obj, SERVICE_MONITOR)
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        assert obj["metadata"].get("namespace") == "rubin", obj["metadata"]
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Job")):
        assert container(workload)["image"] == IMAGE  # the kustomize `images:` entry, not the bare name


def test_the_schema_check_catches_a_wrong_field(tree: Path) -> None:
    deployment = one(render(tree, "scaled"), "Deployment")
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)
    container(deployment)["readinesProbe"] = {}  # a typo: strict schemas refuse unknown fields
    deployment["spec"]["replicas"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


# --------------------------------------------------------------------------- what runs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_resources_and_a_locked_down_container(tree: Path, overlay: str) -> None:
    objects = render(tree, overlay)
    main = container(one(objects, "Deployment"))
    assert main["ports"] == [{"containerPort": 3000, "name": "http"}]
    assert main["readinessProbe"]["httpGet"] == {"path": "/api/health", "port": "http"}
    assert main["livenessProbe"]["httpGet"]["port"] == "http"
    assert main["startupProbe"]["httpGet"]["port"] == "http"
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Job")):
        box = container(workload)
        assert box["resources"]["requests"]["cpu"] and box["resources"]["requests"]["memory"]
        assert box["resources"]["limits"]["memory"]
        assert box["securityContext"]["readOnlyRootFilesystem"] is True
        assert box["securityContext"]["allowPrivilegeEscalation"] is False
        assert box["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert pod_spec(workload)["securityContext"]["runAsNonRoot"] is True
        assert any(m["mountPath"] == "/tmp" for m in box["volumeMounts"])  # the workers' metrics files


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_sticky_sessions_anywhere(tree: Path, overlay: str) -> None:
    objects = render(tree, overlay)
    assert one(objects, "Service")["spec"].get("sessionAffinity", "None") == "None"
    for obj in objects:
        annotations = obj["metadata"].get("annotations") or {}
        assert not [a for a in annotations if "affinity" in a or "session-cookie" in a or "upstream-hash" in a]
        if obj["kind"] in ("Deployment", "Job"):
            assert "affinity" not in pod_spec(obj)


def test_single_is_one_pod_on_a_volume_without_redis(tree: Path) -> None:
    objects = render(tree, "single")
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    claim = one(objects, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    settings = settings_of(objects, deployment)
    assert {"path": settings["DATA_DIR"], "sub": None} in [
        {"path": m["mountPath"], "sub": m.get("subPath")} for m in container(deployment)["volumeMounts"]
        if m["name"] == "data"
    ]  # fmt: skip
    assert settings["AUTO_MIGRATE"] == "true"
    assert "REDIS_URL" not in one(objects, "Secret")["data"] and "REDIS_URL" not in settings
    assert {o["kind"] for o in objects}.isdisjoint({"HorizontalPodAutoscaler", "Job"})


def test_scaled_runs_migrations_in_a_job_and_scales_behind_an_ingress(tree: Path) -> None:
    objects = render(tree, "scaled")
    deployment, job = one(objects, "Deployment"), one(objects, "Job")
    settings = settings_of(objects, deployment)
    assert settings["AUTO_MIGRATE"] == "false"
    assert int(settings["WORKERS"]) > 1
    assert container(job)["command"] == ["python", "-m", "rubin_app", "migrate"]
    assert container(job)["envFrom"] == container(deployment)["envFrom"]  # same database, same settings
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert {"DATABASE_URL", "REDIS_URL"} <= set(one(objects, "Secret")["data"])
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rubin"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert not one(objects, "Job")["spec"]["template"]["metadata"]["labels"].items() >= (
        one(objects, "Service")["spec"]["selector"].items()
    ), "the Service would send users to the migration Job"


def test_the_ingress_upgrades_websockets_with_long_timeouts_and_no_buffering(tree: Path) -> None:
    objects = render(tree, "scaled")
    ingress, service = one(objects, "Ingress"), one(objects, "Service")
    notes = ingress["metadata"]["annotations"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600  # an idle tab's websocket
    assert int(notes["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # answers and /_event stream through
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"  # /_event, /api, /v1 and the pages
    assert path["backend"]["service"] == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert any(p["name"] == "http" for p in service["spec"]["ports"])


def test_the_service_monitor_scrapes_every_pod_with_the_metrics_token(tree: Path) -> None:
    objects = render(tree, "scaled")
    monitor, service, secret = one(objects, "ServiceMonitor"), one(objects, "Service"), one(objects, "Secret")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["authorization"]["type"] == "Bearer"
    credentials = endpoint["authorization"]["credentials"]
    assert credentials["name"] == secret["metadata"]["name"]  # the generated (hashed) name, not a dangling one
    assert credentials["key"] == "METRICS_TOKEN" and "METRICS_TOKEN" in secret["data"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_from_the_operators_file_and_never_written_into_a_manifest(
    tree: Path, overlay: str
) -> None:
    given = dict(line.split("=", 1) for line in (tree / "overlays" / overlay / "secrets.env").read_text().splitlines())
    objects = render(tree, overlay)
    secret = one(objects, "Secret")
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == given
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            assert SECRET_NAMES.isdisjoint(obj["data"])
        if obj["kind"] in ("Deployment", "Job"):
            box = container(obj)
            assert {"secretRef": {"name": secret["metadata"]["name"]}} in box["envFrom"]
            assert not [e for e in box.get("env", []) if e["name"] in SECRET_NAMES and "value" in e]
    tracked = subprocess.run(["git", "ls-files", "deploy"], cwd=ROOT, capture_output=True, text=True).stdout
    assert not [path for path in tracked.splitlines() if path.endswith("/secrets.env")], "a secrets.env is committed"


# --------------------------------------------------------------------------- missing secrets: refused


def deploy_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "deploy_check.py"), *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_without_secrets_env_nothing_renders_and_the_check_says_what_to_do(tree: Path, overlay: str) -> None:
    target = tree / "overlays" / overlay
    (target / "secrets.env").unlink()
    done = kustomize(target)
    assert done.returncode != 0 and "secrets.env" in done.stderr
    output = tree / "rendered.yaml"
    output.write_text("the previous release\n")
    checked = deploy_check(str(target), "-o", str(output))
    assert checked.returncode == 2
    assert "secrets.env: missing (copy secrets.env.example and fill it in)" in checked.stderr
    assert output.read_text() == "the previous release\n"  # nothing overwritten


def test_placeholders_and_bad_values_are_refused_by_name_without_printing_them(tree: Path) -> None:
    target = tree / "overlays" / "scaled"
    good = real_secrets()
    example = dict(
        line.split("=", 1)
        for line in (target / "secrets.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    write_secrets(
        target,
        {
            "SECRET_KEY": "too-short-" + "a" * 5,
            "ENCRYPTION_KEY": example["ENCRYPTION_KEY"],
            "METRICS_TOKEN": good["METRICS_TOKEN"],
            "DATABASE_URL": "sqlite:////data/rubin.db",
            # REDIS_URL left out
        },
    )
    output = tree / "rendered.yaml"
    checked = deploy_check(str(target), "-o", str(output))
    assert checked.returncode == 2
    lines = checked.stderr.splitlines()
    assert any(line.startswith("SECRET_KEY: must be at least 32 characters") for line in lines), lines
    assert any(line.startswith("ENCRYPTION_KEY: still a placeholder") for line in lines), lines
    assert any(line.startswith("DATABASE_URL: must be a PostgreSQL URL") for line in lines), lines
    assert any(line.startswith("REDIS_URL: missing from") for line in lines), lines
    assert not any(line.startswith("METRICS_TOKEN") for line in lines), lines
    assert "too-short" not in checked.stderr and good["METRICS_TOKEN"] not in checked.stderr
    assert not output.exists()


def test_a_secret_put_into_the_config_map_is_refused(tree: Path) -> None:
    target = tree / "overlays" / "single"
    kustomization = target / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace(
            "      - AUTO_MIGRATE=true\n", "      - AUTO_MIGRATE=true\n      - REDIS_URL=redis://r:6379/0\n"
        )
    )
    checked = deploy_check(str(target))
    assert checked.returncode == 2
    assert "REDIS_URL: in ConfigMap rubin-settings-" in checked.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_complete_overlay_passes_and_is_written(tree: Path, overlay: str) -> None:
    output = tree / "rendered.yaml"
    output.write_text("the previous release\n")
    checked = deploy_check(str(tree / "overlays" / overlay), "-o", str(output))
    assert checked.returncode == 0, checked.stderr
    objects = [doc for doc in yaml.safe_load_all(output.read_text()) if doc]
    assert {o["kind"] for o in objects} >= {"Deployment", "Service", "Secret", "ConfigMap"}
    assert "schemas were not checked" not in checked.stderr
