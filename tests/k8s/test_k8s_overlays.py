"""What each overlay and variant promises beyond the shared facts: production passes the
platform's start-up guards and pins its images, local-dev generates the fake Secret
without a name hash, each variant has the shape its README section describes, and every
container of every rendering is hardened.
"""

from __future__ import annotations

import base64

import pytest
from k8s_render import (
    APP,
    DEPLOYMENTS,
    SECRET_KEYS,
    SIDECAR,
    TARGETS,
    Target,
    all_containers,
    container,
    env_of,
    env_value,
    pod_spec,
    render,
    volumes,
)

PROD_TARGETS = [t for t in TARGETS if t.name.startswith("production")]


@pytest.mark.parametrize("target", PROD_TARGETS, ids=lambda t: t.name)
def test_production_passes_the_platform_start_up_guards(target: Target) -> None:
    rendered = render(target.path)
    assert rendered.find("Secret", "agentos-secrets") is None, "production generates no Secret"
    for deployment in rendered.deployments:
        name = deployment["metadata"]["name"]
        app = container(deployment, APP)
        env = env_of(app)
        # The platform trims and lower-cases the profile; anything but prod/demo is dev.
        assert env["AGENTOS_PROFILE"]["value"].strip().lower() == "prod"
        assert env["AGENTOS_METRICS_REQUIRE_AUTH"]["value"] == "1"
        assert not env.get("AGENTOS_DEFAULT_TENANT", {}).get("value", "").strip()
        assert env.get("AGENTOS_ALLOW_DEV_HEADERS", {}).get("value") != "1"
        data = volumes(deployment)["data"]
        assert data == {"name": "data",
                        "persistentVolumeClaim": {"claimName": f"{name}-data"}}
        claim = rendered.get("PersistentVolumeClaim", f"{name}-data")
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        # A ReadWriteOnce claim cannot be mounted by a surge pod on another node.
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    federation = rendered.get("Deployment", "agentos-federation")
    assert env_value(container(federation, APP), "AGENTOS_PEERS_FILE")
    assert container(federation, APP)["image"] == "ghcr.io/nexixai/agentos:1.0.2"


def test_local_dev_is_the_original_overlay_plus_the_sidecar() -> None:
    rendered = render("overlays/local-dev")
    for deployment in rendered.deployments:
        app = container(deployment, APP)
        assert env_value(app, "AGENTOS_PROFILE") == "dev"
        assert env_value(app, "AGENTOS_DEFAULT_TENANT") == "tnt_demo"
    secrets = rendered.of_kind("Secret")
    # disableNameSuffixHash: the name stays agentos-secrets, so an edit is a rotation.
    assert [s["metadata"]["name"] for s in secrets] == ["agentos-secrets"]
    secret = secrets[0]
    assert secret["type"] == "Opaque"
    assert sorted(secret["data"]) == sorted(SECRET_KEYS)
    for key, encoded in secret["data"].items():
        value = base64.b64decode(encoded).decode()
        assert value.startswith("fake_") and value.endswith("_localdev"), key


def test_classic_variant_moves_the_sidecar_into_containers() -> None:
    for deployment in render("examples/classic").deployments:
        spec = pod_spec(deployment)
        assert "initContainers" not in spec
        assert [c["name"] for c in spec["containers"]] == [APP, SIDECAR]


@pytest.mark.parametrize("variant", ["signal", "restart"])
def test_process_variants_share_the_pid_namespace_and_the_app_uid(variant: str) -> None:
    for deployment in render(f"examples/{variant}").deployments:
        spec = pod_spec(deployment)
        assert spec["shareProcessNamespace"] is True
        sidecar, app = container(deployment, SIDECAR), container(deployment, APP)
        uid = app["securityContext"]["runAsUser"]
        assert sidecar["securityContext"]["runAsUser"] == uid == spec["securityContext"][
            "runAsUser"]
        assert env_value(sidecar, "AGENTOS_SIDECAR_TARGET_NAME") == "agentos"
        env = env_of(sidecar)
        assert "AGENTOS_SIDECAR_DEPLOYMENT" not in env and "AGENTOS_SIDECAR_NAMESPACE" not in env
        # Signalling needs only a shared UID: no capability comes back.
        assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    signal = container(render("examples/signal").get("Deployment", DEPLOYMENTS[0]), SIDECAR)
    assert env_value(signal, "AGENTOS_SIDECAR_SIGNAL") == "HUP"


def test_http_variant_reads_each_services_url_from_its_pod_annotation() -> None:
    rendered = render("examples/http")
    for deployment in rendered.deployments:
        spec = pod_spec(deployment)
        assert not spec.get("shareProcessNamespace")
        url = env_of(container(deployment, SIDECAR))["AGENTOS_SIDECAR_URL"]
        assert url["valueFrom"]["fieldRef"]["fieldPath"] == (
            "metadata.annotations['secrets.agentos.io/reload-url']")
        annotation = deployment["spec"]["template"]["metadata"]["annotations"][
            "secrets.agentos.io/reload-url"]
        port = container(deployment, APP)["ports"][0]["containerPort"]
        assert annotation.startswith(f"http://127.0.0.1:{port}/")


def test_podmonitor_scrapes_the_sidecar_with_the_service_token() -> None:
    monitor = render("examples/production-external-secrets").get(
        "PodMonitor", "agentos-secrets-sidecar")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "agentos-secrets", "key": "AGENTOS_SERVICE_TOKEN"},
    }
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/part-of": "agentos"}


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_every_image_is_pinned(target: Target) -> None:
    """Every rendering passes for prod (the base's profile): no :latest, no bare name."""
    for deployment in render(target.path).deployments:
        for item in all_containers(deployment):
            image = item["image"]
            name = image.rsplit("/", 1)[-1]
            assert "@sha256:" in image or (":" in name and not name.endswith(":latest")), image


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_every_container_is_hardened(target: Target) -> None:
    for deployment in render(target.path).deployments:
        spec = pod_spec(deployment)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 10000
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for item in all_containers(deployment):
            where = f"{deployment['metadata']['name']}/{item['name']}"
            ctx = item["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] >= 10000, where
            resources = item["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), where
            assert {"cpu", "memory"} <= resources["limits"].keys(), where
            assert "livenessProbe" in item, where
            assert item["imagePullPolicy"] == "Always", where


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_network_policy_admits_only_the_service_and_metrics_ports(target: Target) -> None:
    rendered = render(target.path)
    (policy,) = rendered.of_kind("NetworkPolicy")
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/part-of": "agentos"}}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert "from" not in rule
    assert rule["ports"] == [{"protocol": "TCP", "port": "http"},
                             {"protocol": "TCP", "port": 9095}]
    namespace = rendered.get("Namespace", "agentos")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
