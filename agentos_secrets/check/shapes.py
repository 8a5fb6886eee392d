"""The types of every field ``check`` reads, checked once when the objects are loaded.

YAML gives whatever the author typed: ``env: 7``, ``readOnly: "yes"``, ``containers:
{}``. The API server would refuse each of these, and so must ``check``: a wrong type is
an :class:`~.errors.InputError` (exit 2) naming the object and the field, never a
traceback (exit 1, which CI reads as "findings") and never a silent skip (exit 0).

The schema below lists exactly the fields the rules and :mod:`.k8s` walk, with the
types the Kubernetes API gives them; fields nobody reads are not checked. ``null`` is
accepted everywhere, as the API server reads it as "unset". After
:func:`check_object`, the rules may read these fields without further checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InputError

__all__ = ["SCHEMAS", "Map", "Seq", "check_object", "describe"]


class Seq:
    """A list whose items all have the schema ``item``."""

    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item


class Map:
    """A mapping from strings to values of the schema ``value``."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


_KEY_TO_PATH = Seq({"key": str, "path": str})
_REF = {"name": str, "key": str}

CONTAINER: dict[str, Any] = {
    "name": str,
    "image": str,
    "command": Seq(str),
    "args": Seq(str),
    "restartPolicy": str,
    "ports": Seq({"name": str, "containerPort": int}),
    "volumeMounts": Seq({"name": str, "mountPath": str, "subPath": str,
                         "subPathExpr": str, "readOnly": bool}),
    "env": Seq({"name": str, "value": str,
                "valueFrom": {"configMapKeyRef": _REF, "secretKeyRef": _REF}}),
    "envFrom": Seq({"prefix": str, "configMapRef": {"name": str},
                    "secretRef": {"name": str}}),
}

VOLUME: dict[str, Any] = {
    "name": str,
    "secret": {"secretName": str, "items": _KEY_TO_PATH},
    "configMap": {"name": str, "items": _KEY_TO_PATH},
    "projected": {"sources": Seq({
        "secret": {"name": str, "items": _KEY_TO_PATH},
        "configMap": {"name": str, "items": _KEY_TO_PATH},
        "serviceAccountToken": {"path": str},
    })},
    "csi": {"driver": str, "volumeAttributes": Map(str)},
}

POD: dict[str, Any] = {
    "volumes": Seq(VOLUME),
    "containers": Seq(CONTAINER),
    "initContainers": Seq(CONTAINER),
    "shareProcessNamespace": bool,
    "automountServiceAccountToken": bool,
    "serviceAccountName": str,
    "serviceAccount": str,
}

METADATA: dict[str, Any] = {
    "metadata": {"name": str, "namespace": str, "annotations": Map(str)},
}

_WORKLOAD = {"spec": {"template": {"metadata": {"annotations": Map(str)}, "spec": POD}}}
_ROLE = {"rules": Seq({"apiGroups": Seq(str), "resources": Seq(str),
                       "resourceNames": Seq(str), "verbs": Seq(str)})}
_BINDING = {"subjects": Seq({"kind": str, "name": str, "namespace": str}),
            "roleRef": {"kind": str, "name": str}}

#: Kind -> the fields read from objects of that kind (besides :data:`METADATA`).
SCHEMAS: dict[str, dict[str, Any]] = {
    "Deployment": _WORKLOAD,
    "StatefulSet": _WORKLOAD,
    "DaemonSet": _WORKLOAD,
    "Secret": {"data": Map(str), "stringData": Map(str), "immutable": bool},
    "ConfigMap": {"data": Map(str), "binaryData": Map(str)},
    "ServiceAccount": {"automountServiceAccountToken": bool},
    "Role": _ROLE,
    "ClusterRole": _ROLE,
    "RoleBinding": _BINDING,
    "ClusterRoleBinding": _BINDING,
    "SecretProviderClass": {"spec": {"parameters": {"objects": str}}},
}

_NAMES = {str: "a string", bool: "true or false", int: "an integer"}


def describe(value: object) -> str:
    """The type of ``value`` in words (never the value: it may be a secret)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    import datetime  # only here: check of an environment never needs it

    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, bytes):
        return "binary data"
    return "a " + type(value).__name__


def _expected(schema: Any) -> str:
    if isinstance(schema, Seq):
        return "a list"
    if isinstance(schema, Map | dict):
        return "a mapping"
    return _NAMES[schema]


def _matches(value: object, schema: Any) -> bool:
    if isinstance(schema, Seq):
        return isinstance(value, list)
    if isinstance(schema, Map | dict):
        return isinstance(value, Mapping)
    if schema is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, schema)


def _label(item: object, index: int) -> str:
    """How a list item is named in a field path: its ``name`` when it is a short
    string, else its index."""
    name = item.get("name") if isinstance(item, Mapping) else None
    if isinstance(name, str) and name and len(name) <= 253 and "]" not in name:
        return name
    return str(index)


def object_ref(body: Mapping[str, Any]) -> str:
    """``Kind/namespace/name`` of a body whose metadata may still be ill-typed."""
    meta = body.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    parts = [str(body.get("kind") or "?")]
    namespace, name = meta.get("namespace"), meta.get("name")
    if isinstance(namespace, str) and namespace:
        parts.append(namespace)
    parts.append(name if isinstance(name, str) and name else "?")
    return "/".join(parts)


def check_object(body: Mapping[str, Any], where: str, line: int | None = None) -> None:
    """Refuse ``body`` when a field ``check`` reads has the wrong type.

    The InputError names the input, the object (``Kind/namespace/name``) and the field
    path, e.g. ``spec.template.spec.containers[app].env``; never a value.
    """
    kind = str(body.get("kind") or "")
    at = f"{where}:{line}" if line else where
    for schema in (METADATA, SCHEMAS.get(kind)):
        if schema is None:
            continue
        problem = _walk(body, schema)
        if problem is not None:
            field, value, expected = problem
            raise InputError(
                f"{at}: {object_ref(body)}: {field} is {describe(value)}, expected "
                f"{expected}"
            )


def _walk(root: Mapping[str, Any], schema: dict[str, Any]) -> tuple[str, object, str] | None:
    """The first (field, value, expected type) that does not match, or None.

    Iterative, and bounded by the YAML depth limit and the input size.
    """
    pending: list[tuple[object, Any, str]] = [(root, schema, "")]
    while pending:
        value, shape, field = pending.pop()
        if value is None:
            continue
        if not _matches(value, shape):
            return field, value, _expected(shape)
        if isinstance(shape, dict):
            assert isinstance(value, Mapping)
            for key, sub in shape.items():
                if key in value:
                    pending.append((value[key], sub, f"{field}.{key}" if field else key))
        elif isinstance(shape, Map):
            assert isinstance(value, Mapping)
            for key, item in value.items():
                if not isinstance(key, str):
                    return f"{field} key", key, "a string"
                pending.append((item, shape.value, f"{field}[{key}]"))
        elif isinstance(shape, Seq):
            assert isinstance(value, list)
            for index, item in enumerate(value):
                pending.append((item, shape.item, f"{field}[{_label(item, index)}]"))
    return None
