"""Find what a rotation touches: the Secret, who owns it, the pods that mount it.

A pod consumes the Secret when one of its volumes is a ``secret`` volume with that
``secretName`` or a ``projected`` volume with a ``secret`` source of that name; pods of
Deployments, StatefulSets, DaemonSets (and bare pods, Jobs) all count, since the pod is
what mounts it. Workloads are listed too, for the plan and to name a workload whose
template mounts the Secret but has no running pod. A Secret consumed only through
``env``/``envFrom`` is fixed at container start and never rotates in place; such
workloads are reported, not gated.

The sidecar's ``/status`` port is the container ``secrets-sidecar`` (native sidecar in
``initContainers`` or an ordinary container), its port named ``metrics`` (the manifests in
``deploy/k8s``), else its first port; the pod annotation ``rotate.agentos.dev/status-port``
overrides it. ``rotate.agentos.dev/verify-metrics: "PORT/PATH"`` names where the app
serves its verify counters (see :mod:`.status`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from .kube import Kube, KubeError

__all__ = [
    "ANNOTATION_PREFIX",
    "ExternalOwner",
    "Pod",
    "SecretObject",
    "Workload",
    "external_owner",
    "list_pods",
    "list_workloads",
    "read_secret",
]

ANNOTATION_PREFIX = "rotate.agentos.dev/"
STATUS_PORT_ANNOTATION = ANNOTATION_PREFIX + "status-port"
METRICS_ANNOTATION = ANNOTATION_PREFIX + "verify-metrics"
SIDECAR_CONTAINER = "secrets-sidecar"
DEFAULT_STATUS_PORT = 9095


@dataclass
class SecretObject:
    """The Secret as read, with its data decoded; ``raw`` is the API object."""

    raw: dict[str, Any]
    data: dict[str, bytes]

    def __repr__(self) -> str:
        # The data (and raw, which holds it base64-encoded) are secret: keys only.
        return (f"SecretObject(resourceVersion={self.resource_version!r}, "
                f"keys={sorted(self.data)!r})")

    @property
    def meta(self) -> dict[str, Any]:
        meta = self.raw.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def resource_version(self) -> str:
        return str(self.meta.get("resourceVersion", ""))

    @property
    def annotations(self) -> dict[str, str]:
        found = self.meta.get("annotations")
        if not isinstance(found, dict):
            return {}
        return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)}


def secret_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets/{name}"


def read_secret(kube: Kube, namespace: str, name: str) -> SecretObject:
    raw = kube.get(secret_path(namespace, name))
    if not isinstance(raw, dict) or raw.get("kind") not in (None, "Secret"):
        raise KubeError(f"secrets/{name}: the API server did not return a Secret")
    data: dict[str, bytes] = {}
    encoded = raw.get("data") or {}
    if not isinstance(encoded, dict):
        raise KubeError(f"secrets/{name}: data is not a map")
    for key, value in encoded.items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise KubeError(f"secrets/{name}: data[{key}] is not base64") from None
    return SecretObject(raw, data)


# -- owners ------------------------------------------------------------------------------

# Controllers that write Secrets and would overwrite a change made here at their next
# refresh: (how they show, who they are).
_OWNER_KINDS = {
    "ExternalSecret": "the External Secrets Operator (ExternalSecret {name})",
    "PushSecret": "the External Secrets Operator (PushSecret {name})",
    "SecretProviderClassPodStatus": "the Secrets Store CSI driver's secret sync ({name})",
    "SecretProviderClass": "the Secrets Store CSI driver's secret sync ({name})",
    "SealedSecret": "the Sealed Secrets controller (SealedSecret {name})",
    "VaultStaticSecret": "the Vault Secrets Operator (VaultStaticSecret {name})",
    "VaultDynamicSecret": "the Vault Secrets Operator (VaultDynamicSecret {name})",
    "OnePasswordItem": "the 1Password operator (OnePasswordItem {name})",
}
_OWNER_MANAGERS = {
    "external-secrets": "the External Secrets Operator",
    "secrets-store-csi-driver": "the Secrets Store CSI driver's secret sync",
    "secrets-store-csi-driver-provider": "the Secrets Store CSI driver's secret sync",
    "sealed-secrets-controller": "the Sealed Secrets controller",
    "argocd-controller": "Argo CD",
    "argocd-application-controller": "Argo CD",
    "kustomize-controller": "Flux (kustomize-controller)",
    "helm-controller": "Flux (helm-controller)",
    "vault-secrets-operator": "the Vault Secrets Operator",
}
_OWNER_MARKS = {
    "reconcile.external-secrets.io/data-hash": "the External Secrets Operator",
    "secrets-store.csi.k8s.io/managed": "the Secrets Store CSI driver's secret sync",
    "argocd.argoproj.io/tracking-id": "Argo CD",
    "argocd.argoproj.io/instance": "Argo CD",
    "kustomize.toolkit.fluxcd.io/name": "Flux (kustomize-controller)",
    "helm.toolkit.fluxcd.io/name": "Flux (helm-controller)",
}


@dataclass(frozen=True)
class ExternalOwner:
    who: str
    evidence: str


def external_owner(secret: SecretObject) -> ExternalOwner | None:
    """Who else writes this Secret (ownerReferences, managedFields, their marks), if anyone."""
    meta = secret.meta
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, dict):
            kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
            template = _OWNER_KINDS.get(kind, f"{kind} {{name}} (an ownerReference)")
            return ExternalOwner(template.format(name=name),
                                 f"ownerReferences: {kind}/{name}")
    marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    for key, who in _OWNER_MARKS.items():
        if key in marks:
            return ExternalOwner(who, f"metadata: {key}")
    for entry in meta.get("managedFields") or []:
        if isinstance(entry, dict):
            manager = str(entry.get("manager", ""))
            if manager in _OWNER_MANAGERS:
                return ExternalOwner(_OWNER_MANAGERS[manager], f"managedFields: {manager}")
    return None


# -- workloads and pods ------------------------------------------------------------------


def volumes_mounting(spec: dict[str, Any], secret: str) -> list[str]:
    """Names of the volumes of a pod spec that carry Secret ``secret``."""
    found = []
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        source = volume.get("secret")
        if isinstance(source, dict) and source.get("secretName") == secret:
            found.append(str(volume.get("name")))
            continue
        projected = volume.get("projected")
        if isinstance(projected, dict):
            for item in projected.get("sources") or []:
                if isinstance(item, dict) and isinstance(item.get("secret"), dict) and (
                    item["secret"].get("name") == secret
                ):
                    found.append(str(volume.get("name")))
                    break
    return found


def _uses_in_env(spec: dict[str, Any], secret: str) -> bool:
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if not isinstance(container, dict):
            continue
        for source in container.get("envFrom") or []:
            if isinstance(source, dict) and (source.get("secretRef") or {}).get("name") == secret:
                return True
        for env in container.get("env") or []:
            ref = ((env or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
            if isinstance(ref, dict) and ref.get("name") == secret:
                return True
    return False


@dataclass
class Workload:
    kind: str
    name: str
    mounts: bool
    env_only: bool


def list_workloads(kube: Kube, namespace: str, secret: str) -> list[Workload]:
    """Deployments, StatefulSets and DaemonSets whose template uses the Secret."""
    found = []
    for resource, kind in (("deployments", "Deployment"), ("statefulsets", "StatefulSet"),
                           ("daemonsets", "DaemonSet")):
        for item in kube.list_all(f"/apis/apps/v1/namespaces/{namespace}/{resource}"):
            spec = ((item.get("spec") or {}).get("template") or {}).get("spec") or {}
            if not isinstance(spec, dict):
                continue
            mounts = bool(volumes_mounting(spec, secret))
            env = _uses_in_env(spec, secret)
            if mounts or env:
                found.append(Workload(kind, str(item.get("metadata", {}).get("name")),
                                      mounts, env and not mounts))
    return found


@dataclass
class Pod:
    name: str
    uid: str
    ready: bool
    owner: str
    status_port: int | None
    metrics: tuple[int, str] | None
    created: str
    problems: list[str] = field(default_factory=list)


def _owner(meta: dict[str, Any]) -> str:
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return "-"


def _status_port(spec: dict[str, Any], annotations: dict[str, Any]) -> int | None:
    override = annotations.get(STATUS_PORT_ANNOTATION)
    if isinstance(override, str) and override.isdigit() and 0 < int(override) < 65536:
        return int(override)
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for container in containers:
        if isinstance(container, dict) and container.get("name") == SIDECAR_CONTAINER:
            ports = [p for p in container.get("ports") or [] if isinstance(p, dict)]
            for port in ports:
                if port.get("name") == "metrics" and isinstance(port.get("containerPort"), int):
                    return int(port["containerPort"])
            if ports and isinstance(ports[0].get("containerPort"), int):
                return int(ports[0]["containerPort"])
            return DEFAULT_STATUS_PORT
    return None


def _metrics_target(annotations: dict[str, Any]) -> tuple[int, str] | None:
    text = annotations.get(METRICS_ANNOTATION)
    if not isinstance(text, str):
        return None
    port, _, path = text.partition("/")
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if not all(c.isalnum() or c in "-_./" for c in path) or ".." in path:
        return None
    return int(port), path or "metrics"


def list_pods(
    kube: Kube, namespace: str, secret: str, *, selector: str | None = None
) -> list[Pod]:
    """Running pods (not being deleted) whose volumes carry the Secret."""
    query = [("fieldSelector", "status.phase=Running")]
    if selector:
        query.append(("labelSelector", selector))
    pods = []
    for item in kube.list_all(f"/api/v1/namespaces/{namespace}/pods", query):
        meta = item.get("metadata") or {}
        spec = item.get("spec") or {}
        status = item.get("status") or {}
        if not isinstance(meta, dict) or not isinstance(spec, dict):
            continue
        if meta.get("deletionTimestamp") or status.get("phase") != "Running":
            continue
        if not volumes_mounting(spec, secret):
            continue
        annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
        ready = any(
            isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        pods.append(Pod(
            name=str(meta.get("name")),
            uid=str(meta.get("uid") or meta.get("name")),
            ready=ready,
            owner=_owner(meta),
            status_port=_status_port(spec, annotations or {}),
            metrics=_metrics_target(annotations or {}),
            created=str(meta.get("creationTimestamp", "")),
        ))
    return pods
