"""The facts of the original Track 04 packaging survive in every rendering: names, labels,
container name, image, args, ports (Services 50081-50083 to containers 8081-8083), env
per service, volumes and mount paths, and the peers seed with its ports corrected to the
ones the Services listen on.
"""

from __future__ import annotations

import json

import pytest
from k8s_render import (
    APP,
    NAMESPACE,
    TARGETS,
    Target,
    container,
    env_value,
    mounts,
    pod_spec,
    render,
    volumes,
)

SERVICES = {
    "agentos-agent-orchestrator": {
        "service": "agent-orchestrator", "port": 8081, "health": "/v1/health",
        "env": {
            "AGENTOS_RUN_STORE_FILE": "/var/agentos/agent-orchestrator/runs.json",
            "AGENTOS_QUOTA_RUN_CREATE_QPS": "10",
            "AGENTOS_QUOTA_CONCURRENT_RUNS": "25",
        },
    },
    "agentos-model-policy": {
        "service": "model-policy", "port": 8082, "health": "/v1/health",
        "env": {"AGENTOS_QUOTA_INVOKE_QPS": "20"},
    },
    "agentos-federation": {
        "service": "federation", "port": 8083, "health": "/v1/federation/health",
        "env": {
            "AGENTOS_FED_FORWARD_INDEX_FILE": "/var/agentos/federation/forward-index.json",
            "AGENTOS_PEERS_FILE": "/etc/agentos/peers/peers.seed.json",
            "AGENTOS_STACK_ID": "stk_local",
            "AGENTOS_ENVIRONMENT": "k8s",
            "AGENTOS_REGION": "local",
        },
    },
}
IMAGE_REPO = "ghcr.io/nexixai/agentos"

targets = pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)


@targets
def test_the_three_deployments_and_services(target: Target) -> None:
    rendered = render(target.path)
    assert sorted(d["metadata"]["name"] for d in rendered.deployments) == sorted(SERVICES)
    assert sorted(s["metadata"]["name"] for s in rendered.of_kind("Service")) == sorted(
        SERVICES
    )
    for doc in rendered.docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


@targets
@pytest.mark.parametrize("name", sorted(SERVICES))
def test_deployment_facts(target: Target, name: str) -> None:
    facts = SERVICES[name]
    deployment = render(target.path).get("Deployment", name)
    labels = {"app": name, "app.kubernetes.io/name": name,
              "app.kubernetes.io/part-of": "agentos"}
    assert labels.items() <= deployment["metadata"]["labels"].items()
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": name}
    assert labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()

    app = container(deployment, APP)
    assert pod_spec(deployment)["containers"][0]["name"] == APP
    repo, _, tag = app["image"].rpartition(":")
    assert repo == IMAGE_REPO and tag
    port = facts["port"]
    assert app["args"] == ["serve", "--addr", f":{port}", facts["service"]]
    assert app["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]

    expected_env = {
        "AGENTOS_SERVICE": facts["service"],
        "AGENTOS_PROFILE": target.profile,
        "AGENTOS_METRICS_REQUIRE_AUTH": "1",
        "AGENTOS_AUDIT_SINK": f"file:/var/agentos/{facts['service']}/audit.log",
        **facts["env"],
    }
    for key, value in expected_env.items():
        assert env_value(app, key) == value, f"{name}: {key}"

    for probe in ("livenessProbe", "readinessProbe"):
        assert app[probe]["httpGet"] == {"path": facts["health"], "port": "http"}

    by_path = {m["mountPath"]: m for m in mounts(app)}
    assert by_path["/var/agentos"]["name"] == "data"
    data = volumes(deployment)["data"]
    assert "emptyDir" in data or data["persistentVolumeClaim"]["claimName"] == f"{name}-data"
    if name == "agentos-federation":
        peers = by_path["/etc/agentos/peers"]
        assert peers["name"] == "peers" and peers["readOnly"] is True
        assert volumes(deployment)["peers"]["configMap"]["name"] == "agentos-peers"


@targets
def test_services_map_5008x_to_808x(target: Target) -> None:
    rendered = render(target.path)
    for name, facts in SERVICES.items():
        service = rendered.get("Service", name)
        assert service["spec"]["selector"] == {"app": name}
        port = facts["port"]
        assert service["spec"]["ports"] == [
            {"name": "http", "port": port - 8000 + 50000, "targetPort": port,
             "protocol": "TCP"}
        ]


@targets
def test_peers_seed_names_the_service_ports(target: Target) -> None:
    configmap = render(target.path).get("ConfigMap", "agentos-peers")
    seed = json.loads(configmap["data"]["peers.seed.json"])
    assert seed["peers"] == []
    local = seed["local"]
    assert (local["stack_id"], local["environment"], local["region"]) == (
        "stk_local", "k8s", "local")
    assert local["api_versions"] == ["v1"]
    assert local["endpoints"] == {
        "agent-orchestrator_base_url": "http://agentos-agent-orchestrator:50081",
        "model-policy_base_url": "http://agentos-model-policy:50082",
    }
    assert local["build"] == {"version": "1.0.2", "git_sha": "unknown",
                              "timestamp": "1970-01-01T00:00:00Z"}
