"""deploy/kubernetes: valid against the Kubernetes API schemas, consistent with itself and with the server.

Schemas: `kubernetes-validate` (PyPI, offline), strict (unknown fields are errors), for the two newest
Kubernetes minor versions it knows. Lint: a reasoned selection of the usual mistakes, each rule with its
reason below (checkov's Kubernetes checks were run by hand too: docs/DEPLOY.md, "Kubernetes").
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.test_deploy import help_env_names

kubernetes_validate = pytest.importorskip("kubernetes_validate.utils")

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES = ROOT / "deploy" / "kubernetes"
IMAGE_USER_UID = 10001  # the Dockerfile's `useradd --uid`
# Settings of issues in flight: the manifests wire them already. Drop a name once `--help` lists it.
PENDING_SETTINGS: set[str] = set()

Resource = dict[str, Any]


@cache
def manifests() -> dict[str, list[Resource]]:
    """Every YAML file under deploy/kubernetes but the kustomization: its documents."""
    return {
        path.name: [document for document in yaml.safe_load_all(path.read_text()) if document]
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def resources(kind: str | None = None) -> Iterator[Resource]:
    for documents in manifests().values():
        yield from (document for document in documents if kind is None or document["kind"] == kind)


def named(kind: str, name: str) -> Resource:
    [found] = [resource for resource in resources(kind) if resource["metadata"]["name"] == name]
    return found


def kustomization() -> Resource:
    loaded: Resource = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return loaded


def pod_specs() -> Iterator[tuple[str, Resource, Resource]]:
    """(workload name, pod template metadata, pod spec) of every Deployment."""
    for deployment in resources("Deployment"):
        template = deployment["spec"]["template"]
        yield deployment["metadata"]["name"], template["metadata"], template["spec"]


def containers() -> Iterator[tuple[str, Resource]]:
    for name, _, spec in pod_specs():
        for container in spec["containers"]:
            yield f"{name}/{container['name']}", container


def server_container() -> Resource:
    [container] = named("Deployment", "maskcam")["spec"]["template"]["spec"]["containers"]
    return container


def server_env() -> dict[str, Resource]:
    return {entry["name"]: entry for entry in server_container()["env"]}


def newest_versions() -> list[str]:
    """The two newest Kubernetes minor versions whose schemas kubernetes-validate ships."""
    minors: list[str] = []
    for version in reversed(kubernetes_validate.all_versions()):
        minor = kubernetes_validate.major_minor(version)
        if minor not in minors:
            minors.append(minor)
    return [f"{minor}.0" for minor in minors[:2]]


# --- API schemas -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", newest_versions())
def test_every_manifest_validates_against_the_kubernetes_api_schema(version: str) -> None:
    checked = []
    for filename, documents in manifests().items():
        for document in documents:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{filename}: {document['kind']} {document['metadata']['name']}: {error}")
            checked.append(document["kind"])
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Ingress",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Namespace",
    } <= set(checked)


def test_kustomization_lists_the_manifests_and_its_secret_is_documented() -> None:
    config = kustomization()
    assert sorted(config["resources"]) == sorted(set(manifests()) - {"prometheus-adapter.yaml"})
    [generator] = config["secretGenerator"]
    assert generator["envs"] == ["secrets.env"]
    assert (KUBERNETES / ".gitignore").read_text().split() == ["secrets.env"], "secrets stay out of git"
    example = (KUBERNETES / "secrets.env.example").read_text()
    documented = set(re.findall(r"^([\w-]+)=", example, re.MULTILINE))
    referenced = set()
    for _, container in containers():
        for entry in container.get("env", []):
            reference = entry.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert reference["name"] == generator["name"]
                referenced.add(reference["key"])
    assert referenced == documented


# --- the usual mistakes (a reasoned selection) ---------------------------------------------------------


def test_every_container_is_bounded_probed_and_unprivileged() -> None:
    for name, container in containers():
        # A pod without requests is scheduled anywhere and evicted first; one without a memory limit can
        # take the node's memory from the video of others.
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
        assert "memory" in container["resources"]["limits"], name
        # Without readiness a starting pod gets traffic; without liveness a hung one keeps it.
        assert "readinessProbe" in container and "livenessProbe" in container, name
        # No root, no new privileges, no capabilities, no writes outside the volumes.
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        # A floating tag is a different program after any pull.
        image = container["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), name
    for name, _, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        # None of these pods talks to the Kubernetes API: no token to steal.
        assert spec["automountServiceAccountToken"] is False, name


def test_selectors_ports_and_references_resolve() -> None:
    pods = {name: (metadata["labels"], spec) for name, metadata, spec in pod_specs()}

    def selected(selector: dict[str, str]) -> list[str]:
        return [name for name, (labels, _) in pods.items() if selector.items() <= labels.items()]

    for deployment in resources("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for service in resources("Service"):
        [target] = selected(service["spec"]["selector"])  # a Service that selects nothing is silent
        port_names = {port["name"] for c in pods[target][1]["containers"] for port in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]
    for budget in resources("PodDisruptionBudget"):
        assert selected(budget["spec"]["selector"]["matchLabels"])
    for autoscaler in resources("HorizontalPodAutoscaler"):
        assert named("Deployment", autoscaler["spec"]["scaleTargetRef"]["name"])
    services = {service["metadata"]["name"]: service for service in resources("Service")}
    for ingress in resources("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                ports = {port["name"] for port in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in ports
    for policy in resources("NetworkPolicy"):
        assert selected(policy["spec"]["podSelector"]["matchLabels"])
    # `kubectl apply -f` of one file lands where `kubectl apply -k` puts everything.
    namespace = kustomization()["namespace"]
    for filename, documents in manifests().items():
        for document in documents:
            if document["kind"] != "Namespace" and filename != "prometheus-adapter.yaml":
                assert document["metadata"]["namespace"] == namespace, filename
    config_maps = {config["metadata"]["name"] for config in resources("ConfigMap")}
    claims = {claim["metadata"]["name"] for claim in resources("PersistentVolumeClaim")}
    for name, _, spec in pod_specs():
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, name
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, name
        if spec.get("hostNetwork"):  # else cluster names (the MQTT broker) do not resolve
            assert name == "coturn" or spec["dnsPolicy"] == "ClusterFirstWithHostNet", name


# --- the server's own needs ------------------------------------------------------------------------------


def test_server_settings_are_real_and_wired_to_the_broker_and_turn() -> None:
    env = server_env()
    assert set(env) <= help_env_names() | PENDING_SETTINGS, set(env) - help_env_names()
    # The history on the operator's PostgreSQL, and the tokens, only from the Secret.
    for name in ("MASKCAM_TOKEN", "MASKCAM_ADMIN_TOKEN", "MASKCAM_HISTORY", "MASKCAM_ICE_CREDENTIAL"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    assert (KUBERNETES / "secrets.env.example").read_text().count("history-url=postgresql://") == 1
    # The broker: MASKCAM_MQTT names the Mosquitto Service.
    broker = urlsplit(env["MASKCAM_MQTT"]["value"])
    mosquitto = named("Service", "mosquitto")
    assert broker.scheme == "mqtt"
    assert broker.hostname == f"mosquitto.{kustomization()['namespace']}.svc.cluster.local"
    assert broker.port in {port["port"] for port in mosquitto["spec"]["ports"]}
    # TURN: the pages' credentials are coturn's user, and coturn runs the shipped configuration.
    coturn = named("Deployment", "coturn")["spec"]["template"]["spec"]["containers"][0]
    assert f"--user={env['MASKCAM_ICE_USERNAME']['value']}:$(TURN_PASSWORD)" in coturn["args"]
    shipped = (ROOT / "deploy" / "turnserver.conf").read_text()
    assert named("ConfigMap", "coturn")["data"]["turnserver.conf"] == shipped
    assert all(url.startswith("turn:") for url in env["MASKCAM_ICE_SERVER"]["value"].split(","))


def test_server_pods_probe_healthz_drain_and_scale_on_open_sessions() -> None:
    deployment = named("Deployment", "maskcam")
    spec = deployment["spec"]["template"]["spec"]
    container = server_container()
    env = server_env()
    port = int(env["MASKCAM_PORT"]["value"])
    assert [p["containerPort"] for p in container["ports"]] == [port]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz", probe
    # Host networking, one pod per node: the media path (docs/DEPLOY.md, "Kubernetes").
    assert spec["hostNetwork"] is True
    [term] = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert spec["securityContext"]["runAsUser"] == IMAGE_USER_UID
    # Drain: out of the endpoints first, then SIGTERM, which closes every session (the pages reconnect
    # elsewhere) and exits in a few seconds (tests/test_image.py measures `podman stop`): within grace.
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert int(command[1]) + 10 <= spec["terminationGracePeriodSeconds"]
    # Scaling on open cameras per pod, below the per-pod cap, through the adapter's rule.
    [metric] = named("HorizontalPodAutoscaler", "maskcam")["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert name == "maskcam_active_sessions"
    assert float(metric["pods"]["target"]["averageValue"]) < int(env["MASKCAM_MAX_SESSIONS"]["value"])
    adapter = yaml.safe_load(named("ConfigMap", "prometheus-adapter")["data"]["config.yaml"])
    assert [rule["name"]["as"] for rule in adapter["rules"]] == [name]
    assert name in adapter["rules"][0]["seriesQuery"]
    assert f"`{name}`" in (ROOT / "docs" / "API.md").read_text(), "not a metric the server documents"
    assert named("PodDisruptionBudget", "maskcam")["spec"]["maxUnavailable"] == 1


@pytest.mark.skipif(shutil.which("checkov") is None, reason="checkov is not installed (optional)")
def test_checkov_finds_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        ["checkov", "--quiet", "--compact", "--framework", "kubernetes", "-d", str(KUBERNETES)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:]
