"""Reading pod templates the way the kubelet and the API server would.

Helpers only (no findings): which volumes come from which Secret and with which keys,
where each container mounts them, what a container's environment resolves to, which
action the sidecar runs, and whether RBAC in the stream grants a verb. Field paths are
written ``spec.template.spec.containers[NAME].volumeMounts[VOL]`` so that a finding
points at the object and the field a human has to edit.

Every field read here has had its type checked once, when the objects were loaded
(:mod:`.shapes`, which lists them): a wrong type never reaches this module. ``_map`` and
``_seq`` only turn an absent or ``null`` field into an empty one.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .inputs import K8sObject, Manifests

__all__ = [
    "AGENTOS_SECRET",
    "CSI_DRIVER",
    "SIDECAR_NAME",
    "WORKLOAD_KINDS",
    "Container",
    "SecretVolume",
    "Workload",
    "configmap",
    "container_env",
    "grants",
    "is_agentos_secret",
    "secret_keys",
    "secret_values",
    "sidecar_action",
    "sidecar_flag",
    "sidecar_flag_source",
]

AGENTOS_SECRET = "agentos-secrets"  # noqa: S105 - the Secret object's name, not a value
SIDECAR_NAME = "secrets-sidecar"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# kustomize's secretGenerator appends "-" and a 10-character content hash.
_GENERATED = re.compile(rf"{re.escape(AGENTOS_SECRET)}(-[a-z0-9]{{10}})?\Z")


def is_agentos_secret(name: str | None) -> bool:
    """Whether ``name`` is Secret agentos-secrets, with or without the generator's hash."""
    return bool(name) and _GENERATED.match(name or "") is not None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else []


CSI_DRIVER = "secrets-store.csi.k8s.io"


@dataclass(frozen=True)
class SecretVolume:
    """A pod volume fed by a Secret (or a Secrets Store CSI SecretProviderClass).

    ``items`` maps file path -> key when the volume projects only some keys. The CSI
    driver rewrites its files on rotation like the kubelet does, so it counts as a
    rotating Secret volume; ``kind`` tells where its keys are declared.
    """

    name: str
    secret: str
    items: Mapping[str, str] | None
    kind: str = "Secret"


@dataclass(frozen=True)
class Container:
    """One container of a pod template and the field path that reaches it."""

    body: Mapping[str, Any]
    field: str
    init: bool

    @property
    def name(self) -> str:
        return str(self.body.get("name") or "?")

    def mounts(self) -> Iterator[Mapping[str, Any]]:
        for mount in _seq(self.body.get("volumeMounts")):
            if isinstance(mount, Mapping):
                yield mount

    def args(self) -> list[str]:
        return [str(a) for a in (*_seq(self.body.get("command")), *_seq(self.body.get("args")))]


def _secret_volume(volume: Mapping[str, Any]) -> SecretVolume | None:
    name = str(volume.get("name") or "")
    secret = _map(volume.get("secret"))
    if secret:
        return SecretVolume(name, str(secret.get("secretName") or ""), _items(secret))
    for source in _seq(_map(volume.get("projected")).get("sources")):
        projected = _map(_map(source).get("secret"))
        if projected:
            return SecretVolume(name, str(projected.get("name") or ""), _items(projected))
    csi = _map(volume.get("csi"))
    if csi.get("driver") == CSI_DRIVER:
        spc = str(_map(csi.get("volumeAttributes")).get("secretProviderClass") or "")
        return SecretVolume(name, spc, None, "SecretProviderClass")
    return None


def _items(source: Mapping[str, Any]) -> Mapping[str, str] | None:
    items = _seq(source.get("items"))
    if not items:
        return None
    return {str(_map(i).get("path")): str(_map(i).get("key")) for i in items}


class Workload:
    """A Deployment, StatefulSet or DaemonSet and its pod template."""

    def __init__(self, obj: K8sObject) -> None:
        self.obj = obj
        template = _map(_map(obj.body.get("spec")).get("template"))
        self.template_annotations = _map(_map(template.get("metadata")).get("annotations"))
        self.pod: Mapping[str, Any] = _map(template.get("spec"))
        self.volumes = {
            str(_map(v).get("name")): _map(v) for v in _seq(self.pod.get("volumes"))
        }
        self.secret_volumes = {
            sv.name: sv for v in self.volumes.values() if (sv := _secret_volume(v))
        }

    @property
    def ref(self) -> str:
        return self.obj.ref

    def containers(self) -> Iterator[Container]:
        base = "spec.template.spec"
        for key, init in (("initContainers", True), ("containers", False)):
            for body in _seq(self.pod.get(key)):
                if isinstance(body, Mapping):
                    yield Container(body, f"{base}.{key}[{body.get('name')}]", init)

    def agentos_volumes(self) -> set[str]:
        return {n for n, sv in self.secret_volumes.items() if is_agentos_secret(sv.secret)}

    def agentos_secret_volumes(self) -> set[str]:
        """The volumes fed by Secret agentos-secrets itself (``secret`` or ``projected``,
        not a CSI SecretProviderClass of that name): what ``rotate`` rotates."""
        return {n for n, sv in self.secret_volumes.items()
                if sv.kind == "Secret" and is_agentos_secret(sv.secret)}

    def mount_for(self, container: Container, path: str) -> Mapping[str, Any] | None:
        """The mount of ``container`` whose mountPath holds ``path`` (longest match).

        A subPath mount holds exactly its mountPath (one file or directory).
        """
        best: Mapping[str, Any] | None = None
        norm = posixpath.normpath(path)
        for mount in container.mounts():
            root = posixpath.normpath(str(mount.get("mountPath") or "/-"))
            sub = bool(mount.get("subPath") or mount.get("subPathExpr"))
            inside = norm == root if sub else norm.startswith(root.rstrip("/") + "/")
            if inside and (
                best is None or len(root) > len(str(best.get("mountPath")))
            ):
                best = mount
        return best


def secret_values(obj: K8sObject) -> dict[str, bytes | None]:
    """A Secret's keys and decoded values (None when ``data`` is not valid base64)."""
    values: dict[str, bytes | None] = {}
    for key, raw in _map(obj.body.get("data")).items():
        try:
            values[str(key)] = base64.b64decode(str(raw or ""), validate=True)
        except (binascii.Error, ValueError):
            values[str(key)] = None
    for key, raw in _map(obj.body.get("stringData")).items():
        values[str(key)] = str(raw if raw is not None else "").encode("utf-8")
    return values


def _provider_objects(obj: K8sObject) -> set[str] | None:
    """The file names a SecretProviderClass writes: each object's alias or name."""
    raw = _map(_map(obj.body.get("spec")).get("parameters")).get("objects")
    parsed = _yaml_value(raw, obj) if raw else None
    if isinstance(parsed, Mapping) and "array" in parsed:  # the Azure provider's wrapping
        parsed = [_yaml_value(x, obj) for x in _seq(parsed["array"])]
    names = {
        str(_map(o).get("objectAlias") or _map(o).get("objectName"))
        for o in _seq(parsed)
        if _map(o).get("objectAlias") or _map(o).get("objectName")
    }
    return names or None


def _yaml_value(raw: object, obj: K8sObject) -> Any:
    """A YAML string embedded in a field, parsed with the same bounds as the stream;
    None when it is not one document of valid YAML (its format is the provider's)."""
    from .errors import InputError
    from .yamlsafe import load_documents

    if not isinstance(raw, str):
        return None
    try:
        docs = load_documents(raw, f"{obj.ref} spec.parameters.objects")
    except InputError:
        return None
    return docs[0] if len(docs) == 1 else None


def secret_keys(
    manifests: Manifests, volume: SecretVolume, namespace: str | None
) -> set[str] | None:
    """The keys of the volume's Secret when the stream declares them; None when external."""
    obj = manifests.find(volume.kind, volume.secret, namespace)
    if obj is None:
        return None
    if volume.kind == "SecretProviderClass":
        return _provider_objects(obj)
    return set(_map(obj.body.get("data"))) | set(_map(obj.body.get("stringData")))


def configmap(manifests: Manifests, name: str, namespace: str | None) -> Mapping[str, Any] | None:
    """A ConfigMap's data (and binaryData) when the stream holds it; None otherwise."""
    obj = manifests.find("ConfigMap", name, namespace)
    if obj is None:
        return None
    return {**_map(obj.body.get("data")), **_map(obj.body.get("binaryData"))}


def container_env(
    container: Container, manifests: Manifests, namespace: str | None
) -> dict[str, str | None]:
    """What the container's environment resolves to; None where it cannot be known here.

    ``env`` wins over ``envFrom`` (as in Kubernetes); ConfigMaps are looked up in the
    stream; values from Secrets, the downward API or absent ConfigMaps are None.
    """
    env: dict[str, str | None] = {}
    for source in _seq(container.body.get("envFrom")):
        ref = _map(_map(source).get("configMapRef"))
        prefix = str(_map(source).get("prefix") or "")
        data = configmap(manifests, str(ref.get("name")), namespace) if ref else None
        for key, value in (data or {}).items():
            env[prefix + str(key)] = str(value)
    for var in _seq(container.body.get("env")):
        var = _map(var)
        name = str(var.get("name") or "")
        if "value" in var:
            env[name] = "" if var["value"] is None else str(var["value"])
            continue
        ref = _map(_map(var.get("valueFrom")).get("configMapKeyRef"))
        data = configmap(manifests, str(ref.get("name")), namespace) if ref else None
        value = (data or {}).get(str(ref.get("key"))) if ref else None
        env[name] = None if value is None else str(value)
    return env


def sidecar_flag_source(
    container: Container, env: Mapping[str, str | None], flag: str
) -> tuple[str | None, bool]:
    """A sidecar flag's raw value as the sidecar resolves it, and whether it came from the
    environment (docs/contracts.md).

    ``--flag VALUE`` or ``--flag=VALUE`` on the command line wins over the environment
    variable ``AGENTOS_SIDECAR_FLAG``; ``(None, False)`` when neither is set (or the
    variable comes from a source not knowable here).
    """
    args = container.args()
    for i, arg in enumerate(args):
        if arg == f"--{flag}" and i + 1 < len(args):
            return args[i + 1], False
        if arg.startswith(f"--{flag}="):
            return arg.split("=", 1)[1], False
    value = env.get("AGENTOS_SIDECAR_" + flag.upper().replace("-", "_"))
    return value, value is not None


def sidecar_flag(container: Container, env: Mapping[str, str | None], flag: str) -> str | None:
    """A sidecar flag's value as the sidecar resolves it (see :func:`sidecar_flag_source`);
    an environment value is trimmed, as the sidecar trims it, and blank means unset."""
    value, from_env = sidecar_flag_source(container, env, flag)
    if from_env and value is not None:
        value = value.strip() or None
    return value


def sidecar_action(container: Container, env: Mapping[str, str | None]) -> str:
    """The sidecar's ``--action`` as the sidecar takes it (default ``http``; trimmed and
    matched ignoring case, as its parser does); a word it does not know is reported by
    AS212 and matches no action here."""
    raw = sidecar_flag(container, env, "action")
    return "http" if raw is None else raw.strip().lower()


def _rule_verbs(rule: Mapping[str, Any], group: str, resource: str, name: str) -> set[str]:
    """The verbs ``rule`` grants on ``group/resource`` named ``name`` (empty if none)."""
    groups = {str(g) for g in _seq(rule.get("apiGroups"))}
    resources = {str(r) for r in _seq(rule.get("resources"))}
    names = {str(n) for n in _seq(rule.get("resourceNames"))}
    if (
        groups & {group, "*"}
        and resources & {resource, "*"}
        and (not names or name in names)
    ):
        return {str(v) for v in _seq(rule.get("verbs"))}
    return set()


def grants(
    manifests: Manifests,
    service_account: str,
    namespace: str | None,
    *,
    group: str,
    resource: str,
    verbs: set[str],
    name: str,
) -> bool:
    """True when the (Cluster)RoleBindings in the stream give ``service_account`` the
    verbs. RBAC is additive: the verbs may come from several rules, roles and bindings."""
    roles = {(o.kind, o.name, o.namespace): o for o in manifests.of_kind("Role", "ClusterRole")}
    granted: set[str] = set()
    for binding in manifests.of_kind("RoleBinding", "ClusterRoleBinding"):
        if binding.kind == "RoleBinding" and binding.namespace != namespace:
            continue
        subjects = _seq(binding.body.get("subjects"))
        if not any(
            _map(s).get("kind") == "ServiceAccount"
            and _map(s).get("name") == service_account
            and (_map(s).get("namespace") or binding.namespace) == namespace
            for s in subjects
        ):
            continue
        ref = _map(binding.body.get("roleRef"))
        kind = str(ref.get("kind") or "")
        role_ns = binding.namespace if kind == "Role" else None
        role = roles.get((kind, str(ref.get("name") or ""), role_ns))
        if role is None:
            continue
        for r in _seq(role.body.get("rules")):
            granted |= _rule_verbs(_map(r), group, resource, name)
        if "*" in granted or verbs <= granted:
            return True
    return False
