"""The rotation guarantees, on every Deployment of every rendering.

A rotated Secret reaches a process only through a mounted volume: env vars
(``envFrom``/``secretKeyRef``) are fixed at start, ``subPath`` mounts are never updated.
So: the sidecar is there, the secret volume is mounted read-only and whole by the app and
the sidecar, no secret reaches an env var, each secret ``*_FILE`` path points into that
volume (and at one of its keys where the rendering declares them), and the sidecar's
credentials are the least the ``rollout`` action needs and reach nobody else.
"""

from __future__ import annotations

import pytest
from k8s_render import (
    APP,
    DEPLOYMENTS,
    NAMESPACE,
    SA_TOKEN_PATH,
    SECRET_KEYS,
    SECRET_MOUNT,
    SECRET_NAME,
    SIDECAR,
    SIDECAR_IMAGE,
    SIDECAR_SA,
    TARGETS,
    Obj,
    Rendered,
    Target,
    all_containers,
    container,
    env_of,
    env_value,
    mounts,
    pod_spec,
    render,
    volumes,
)

#: ``*_FILE`` variables that name data files, not secrets. Every other ``*_FILE`` is
#: held to the secret rules, so a new secret variable is checked without a test change.
DATA_FILE_VARS = {
    "AGENTOS_RUN_STORE_FILE",
    "AGENTOS_FED_FORWARD_INDEX_FILE",
    "AGENTOS_PEERS_FILE",
    "AGENTOS_SIDECAR_STATE_FILE",
}

def _cases(targets: list[Target]) -> list[tuple[Target, str]]:
    return [(t, name) for t in targets for name in DEPLOYMENTS]


def _ids(case: tuple[Target, str]) -> str:
    return f"{case[0].name}:{case[1].removeprefix('agentos-')}"


every_deployment = pytest.mark.parametrize("case", _cases(list(TARGETS)), ids=_ids)


def _deployment(case: tuple[Target, str]) -> tuple[Target, Rendered, Obj]:
    target, name = case
    rendered = render(target.path)
    return target, rendered, rendered.get("Deployment", name)


def _secret_volume_name(target: Target, deployment: Obj) -> str:
    """The one volume that carries Secret agentos-secrets (or its CSI stand-in)."""
    found = []
    for name, volume in volumes(deployment).items():
        if volume.get("secret", {}).get("secretName") == SECRET_NAME:
            found.append(name)
        attrs = volume.get("csi", {}).get("volumeAttributes", {})
        if attrs.get("secretProviderClass") == SECRET_NAME:
            found.append(name)
    assert found == [SECRET_NAME], f"secret volumes: {found}"
    volume = volumes(deployment)[SECRET_NAME]
    assert ("csi" if "csi" in volume else "secret") == target.secret_source
    return found[0]


def test_every_deployment_of_every_rendering_has_exactly_one_sidecar() -> None:
    for target in TARGETS:
        for deployment in render(target.path).deployments:
            names = [c["name"] for c in all_containers(deployment)]
            assert names.count(SIDECAR) == 1, (target.name, deployment["metadata"]["name"])


@every_deployment
def test_sidecar_is_wired_in(case: tuple[Target, str]) -> None:
    target, _, deployment = _deployment(case)
    spec = pod_spec(deployment)
    sidecar = container(deployment, SIDECAR)
    if target.form == "native":
        assert [c["name"] for c in spec["initContainers"]] == [SIDECAR]
        assert sidecar["restartPolicy"] == "Always"
        assert [c["name"] for c in spec["containers"]] == [APP]
    else:
        assert "initContainers" not in spec
        assert [c["name"] for c in spec["containers"]] == [APP, SIDECAR]
        assert "restartPolicy" not in sidecar
    assert sidecar["image"] == SIDECAR_IMAGE
    assert sidecar["command"] == ["agentos-secrets", "sidecar"]
    assert env_value(sidecar, "AGENTOS_SIDECAR_ACTION") == target.action
    assert env_value(sidecar, "AGENTOS_SIDECAR_WATCH") == SECRET_MOUNT
    assert env_value(sidecar, "AGENTOS_SIDECAR_LISTEN") == "0.0.0.0:9095"
    assert sidecar["ports"] == [{"name": "metrics", "containerPort": 9095, "protocol": "TCP"}]
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # The app starts only after a native sidecar's startupProbe passes. /readyz of the
    # signal/restart actions needs the app's process: probing it there would deadlock;
    # /startupz waits for the watches and the baseline only, in every form.
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/startupz", "port": "metrics"}
    assert env_value(sidecar, "AGENTOS_METRICS_REQUIRE_AUTH") == "1"
    assert env_value(sidecar, "AGENTOS_SERVICE_TOKEN_FILE") == (
        f"{SECRET_MOUNT}/AGENTOS_SERVICE_TOKEN")

    state_file = env_value(sidecar, "AGENTOS_SIDECAR_STATE_FILE")
    assert state_file == "/var/run/agentos-secrets/state.json"
    state_mount = {m["mountPath"]: m["name"] for m in mounts(sidecar)}["/var/run/agentos-secrets"]
    assert state_mount == "secrets-sidecar-state"
    assert "emptyDir" in volumes(deployment)["secrets-sidecar-state"]

    resources = sidecar["resources"]
    assert resources["requests"] == {"cpu": "10m", "memory": "48Mi"}
    assert resources["limits"]["memory"] == "64Mi"


@every_deployment
def test_secret_volume_is_mounted_whole_and_read_only(case: tuple[Target, str]) -> None:
    target, _, deployment = _deployment(case)
    volume_name = _secret_volume_name(target, deployment)
    users = [APP, SIDECAR]
    for item in all_containers(deployment):
        for mount in mounts(item):
            assert "subPath" not in mount and "subPathExpr" not in mount, (
                f"{item['name']} mounts {mount['name']} with a subPath, which never rotates")
        secret_mounts = [m for m in mounts(item) if m["name"] == volume_name]
        if item["name"] in users:
            assert secret_mounts == [
                {"name": volume_name, "mountPath": SECRET_MOUNT, "readOnly": True}
            ], item["name"]
    source = volumes(deployment)[volume_name]
    if target.secret_source == "secret":
        assert source["secret"].get("optional") is not True
        assert source["secret"]["defaultMode"] & 0o022 == 0, "group/other writable"
    else:
        assert source["csi"]["readOnly"] is True


@every_deployment
def test_no_secret_reaches_an_env_var(case: tuple[Target, str]) -> None:
    _, _, deployment = _deployment(case)
    for item in all_containers(deployment):
        for source in item.get("envFrom", []):
            assert "secretRef" not in source, f"{item['name']}: envFrom secretRef"
        for entry in item.get("env", []):
            assert "secretKeyRef" not in entry.get("valueFrom", {}), (
                f"{item['name']}: {entry['name']} from secretKeyRef")
            assert entry["name"] not in SECRET_KEYS, (
                f"{item['name']}: {entry['name']} set as an env var; use the _FILE form")


@every_deployment
def test_each_secret_file_var_names_a_key_in_the_secret_volume(
    case: tuple[Target, str],
) -> None:
    target, rendered, deployment = _deployment(case)
    volume_name = _secret_volume_name(target, deployment)
    keys = rendered.secret_keys()
    app_env = env_of(container(deployment, APP))
    for key in SECRET_KEYS:
        assert f"{key}_FILE" in app_env, f"the app lacks {key}_FILE"
    checked = 0
    for item in all_containers(deployment):
        mount_path = {m["name"]: m["mountPath"] for m in mounts(item)}.get(volume_name)
        for name, entry in env_of(item).items():
            if not name.endswith("_FILE") or name in DATA_FILE_VARS:
                continue
            path = entry.get("value")
            assert path, f"{item['name']}: {name} has no literal path"
            assert mount_path is not None, f"{item['name']}: {name} but no secret volume"
            directory, _, key = path.rpartition("/")
            assert directory == mount_path, f"{item['name']}: {name}={path} outside {mount_path}"
            if keys is not None:
                assert key in keys, f"{item['name']}: {name} names {key}, not a key of the Secret"
            checked += 1
    assert checked >= len(SECRET_KEYS)


def test_secret_keys_are_declared_where_the_secret_is_rendered() -> None:
    assert render("overlays/local-dev").secret_keys() == set(SECRET_KEYS)
    assert render("examples/production-external-secrets").secret_keys() == set(SECRET_KEYS)
    assert render("examples/production-csi").secret_keys() == set(SECRET_KEYS)
    assert render("overlays/production").secret_keys() is None
    assert render("base").secret_keys() is None


@every_deployment
def test_service_account_token_reaches_only_the_sidecar(case: tuple[Target, str]) -> None:
    target, _, deployment = _deployment(case)
    spec = pod_spec(deployment)
    assert spec["automountServiceAccountToken"] is False
    token_volumes = {
        name for name, volume in volumes(deployment).items()
        if any("serviceAccountToken" in s for s in volume.get("projected", {}).get("sources", []))
    }
    for item in all_containers(deployment):
        mounted = {m["name"] for m in mounts(item)} & token_volumes
        paths = {m["mountPath"] for m in mounts(item)}
        if item["name"] == SIDECAR and target.action == "rollout":
            assert mounted == {"secrets-sidecar-token"}
            assert SA_TOKEN_PATH in paths
        else:
            assert not mounted and SA_TOKEN_PATH not in paths, item["name"]
    if target.action == "rollout":
        assert spec["serviceAccountName"] == SIDECAR_SA
        sources = volumes(deployment)["secrets-sidecar-token"]["projected"]["sources"]
        kinds = [next(iter(source)) for source in sources]
        assert kinds == ["serviceAccountToken", "configMap", "downwardAPI"]
        assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
        sidecar_env = env_of(container(deployment, SIDECAR))
        assert sidecar_env["AGENTOS_SIDECAR_DEPLOYMENT"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.labels['app']"}}
        assert sidecar_env["AGENTOS_SIDECAR_NAMESPACE"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.namespace"}}
        # The downward API label is the Deployment's own name: the sidecar patches itself.
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app"] == deployment["metadata"]["name"]
    else:
        assert "serviceAccountName" not in spec and not token_volumes


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_rbac_grants_only_what_rollout_uses(target: Target) -> None:
    rendered = render(target.path)
    assert not rendered.of_kind("ClusterRole") and not rendered.of_kind("ClusterRoleBinding")
    roles, bindings = rendered.of_kind("Role"), rendered.of_kind("RoleBinding")
    accounts = rendered.of_kind("ServiceAccount")
    if target.action != "rollout":
        assert not roles and not bindings and not accounts
        return
    assert [r["metadata"]["name"] for r in roles] == [SIDECAR_SA]
    assert roles[0]["rules"] == [{
        "apiGroups": ["apps"], "resources": ["deployments"],
        "resourceNames": list(DEPLOYMENTS), "verbs": ["get", "patch"],
    }]
    assert sorted(DEPLOYMENTS) == sorted(d["metadata"]["name"] for d in rendered.deployments)
    assert [b["metadata"]["name"] for b in bindings] == [SIDECAR_SA]
    assert bindings[0]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SIDECAR_SA}
    assert bindings[0]["subjects"] == [
        {"kind": "ServiceAccount", "name": SIDECAR_SA, "namespace": NAMESPACE}]
    assert [a["metadata"]["name"] for a in accounts] == [SIDECAR_SA]
    assert accounts[0]["automountServiceAccountToken"] is False
