"""The sidecar accepts the configuration each rendering gives it.

The sidecar is configured by ``env:`` alone, and an unknown ``AGENTOS_SIDECAR_*`` name
would be ignored without a word. So for every rendered sidecar: every such variable
names a real flag, and the sidecar's own parser (``agentos_secrets.sidecar.config``)
accepts the environment as the kubelet would build it (downward API fields resolved from
the pod template) and reads back the intended action, watch, state, target and
credentials paths.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from k8s_render import (
    DEPLOYMENTS,
    SA_TOKEN_PATH,
    SECRET_MOUNT,
    SIDECAR,
    TARGETS,
    Obj,
    Target,
    container,
    mounts,
    render,
    volumes,
)

from agentos_secrets.sidecar.config import ENV_PREFIX, Config, parse

FIELD = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]\Z")


def _resolve(field_path: str, deployment: Obj) -> str:
    """What the kubelet puts in an env var from a downward API ``fieldRef``."""
    meta = deployment["spec"]["template"]["metadata"]
    if field_path == "metadata.namespace":
        return deployment["metadata"]["namespace"]
    match = FIELD.match(field_path)
    assert match, f"unsupported fieldRef {field_path}"
    # A missing label or annotation resolves to the empty string.
    return meta.get(match.group(1), {}).get(match.group(2), "")


def _environment(sidecar: Obj, deployment: Obj) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in sidecar.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            env[entry["name"]] = _resolve(entry["valueFrom"]["fieldRef"]["fieldPath"],
                                          deployment)
    return env


CASES = [(t, name) for t in TARGETS for name in DEPLOYMENTS]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}:{c[1]}")
def test_the_sidecar_parses_its_rendered_environment(case: tuple[Target, str]) -> None:
    target, name = case
    deployment = render(target.path).get("Deployment", name)
    sidecar = container(deployment, SIDECAR)
    env = _environment(sidecar, deployment)

    known = {f.name for f in dataclasses.fields(Config)} | {"exec"}
    for key in env:
        if key.startswith(ENV_PREFIX):
            flag = key.removeprefix(ENV_PREFIX).lower()
            assert flag in known, f"{key} is no sidecar flag: it would be ignored"

    command = sidecar["command"]
    assert command[:2] == ["agentos-secrets", "sidecar"]
    config = parse([*command[2:], *sidecar.get("args", [])], env)

    assert config.action == target.action
    assert config.watch == (SECRET_MOUNT,)
    assert config.state_file == "/var/run/agentos-secrets/state.json"
    assert config.listen_address == ("0.0.0.0", 9095)
    if target.action == "rollout":
        assert (config.deployment, config.namespace) == (name, "agentos")
        # The defaults land in the projected token volume, mounted only here.
        token_mount = {m["mountPath"]: m["name"] for m in mounts(sidecar)}[SA_TOKEN_PATH]
        paths = {item["path"] for source in volumes(deployment)[token_mount]["projected"][
            "sources"] for item in _projected_paths(source)}
        assert config.token_file == f"{SA_TOKEN_PATH}/token"
        assert config.ca_file == f"{SA_TOKEN_PATH}/ca.crt"
        assert {"token", "ca.crt", "namespace"} <= paths
    elif target.action in {"signal", "restart"}:
        assert config.target_name == "agentos"
    elif target.action == "http":
        assert config.url is not None and config.url.startswith("http://127.0.0.1:")


def _projected_paths(source: Obj) -> list[Obj]:
    if "serviceAccountToken" in source:
        return [{"path": source["serviceAccountToken"]["path"]}]
    (kind,) = source
    return list(source[kind].get("items", []))
