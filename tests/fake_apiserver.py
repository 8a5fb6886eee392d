"""A local HTTPS stand-in for the parts of kube-apiserver that this project talks to.

No cluster runs where this project is tested, so the sidecar's ``rollout`` action and the
``agentos-secrets rotate`` command are tested against this server on 127.0.0.1. It checks
every request the way kube-apiserver would, in the same order, and answers with the same
``Status`` objects (``kind``, ``apiVersion``, ``status``, ``message``, ``reason``,
``code``):

1. TLS: a fresh CA and a server certificate for 127.0.0.1/localhost are generated with
   ``cryptography``; a client must trust that CA to connect at all. Client certificates
   signed by the same CA are accepted (``--client-ca-file`` on the real server) and
   authenticate as their common name (:func:`make_client_cert`).
2. Authentication: a verified client certificate, else ``Authorization: Bearer <token>``
   equal to one of the accepted tokens, else 401 ``Unauthorized``.
3. Routing: the paths below; anything else 404, a known path with an unserved method 405.
4. Authorisation (RBAC): the verb (``get``, ``list``, ``patch``, ``update``, ``create``) on
   the resource (and subresource, name) must be allowed, else 403 ``Forbidden`` with the
   real server's message. Deployments keep the historical ``allowed_verbs`` switch; other
   resources are allowed unless :meth:`FakeApiServer.deny` says otherwise, or, with
   ``rbac=True``, only what :meth:`FakeApiServer.grant` granted (per token if given).
5. Object semantics as the real server has them:

   * every write bumps a global ``resourceVersion`` (like etcd's revision); an update (PUT)
     or a patch whose result carries a different ``metadata.resourceVersion`` than the
     stored one is a 409 ``Conflict`` with the real message;
   * PATCH takes ``application/merge-patch+json``, ``application/strategic-merge-patch+json``
     (maps merged key by key, ``null`` deletes, lists replaced: the Secret fields touched
     here have no merge keys) and ``application/json-patch+json`` (RFC 6902: add, remove,
     replace, test, move, copy); other types 415; a body that is not JSON 400; a failed
     JSON-patch operation 422;
   * Secrets are validated like the real ``ValidateSecret``: data keys must match
     ``[-._a-zA-Z0-9]+``, values must be base64, the total at most 1 MiB, annotations at
     most 256 KiB; ``stringData`` is folded into ``data``; an ``immutable`` Secret refuses
     a data change; all 422 ``Invalid``;
   * pod and workload lists honour ``labelSelector`` (the real grammar: ``=``, ``==``,
     ``!=``, ``in``, ``notin``, exists, ``!`` not-exists; a syntax error is 400),
     ``fieldSelector`` (``metadata.name``, ``metadata.namespace``, ``status.phase``,
     ``spec.nodeName``), and ``limit``/``continue`` paging;
   * ``GET .../pods/{name}[:{port}]/proxy/{path}`` (``pods/proxy`` get) forwards to the pod
     over plain HTTP with the ``Authorization`` header REMOVED, as kube-apiserver's
     authentication filter deletes it, and returns the pod's status and body as they are;
     a pod that cannot be reached is a 503 ``ServiceUnavailable`` as on the real server.

The Deployment PATCH used by the sidecar's ``rollout`` action is, on purpose, stricter than
the real server: the patch must touch exactly one key,
``spec.template.metadata.annotations[<annotation>]``, with a string value, else 422 (the
sidecar must never change anything else in a Deployment it does not own). When the pod
template changes, ``metadata.generation`` goes up and :attr:`FakeApiServer.rollouts` counts
one rollout, as the Deployment controller would start one.

Failures can be injected (:meth:`FakeApiServer.fail_next`, optionally only for one method
and path, with a ``Retry-After``); every request is recorded (:attr:`FakeApiServer.requests`)
so tests can count them, measure their rate and scan them for leaks; ``on_request`` lets a
test act (kill a client) right after a request was applied and before it is answered.
"""

from __future__ import annotations

import base64
import copy
import datetime
import http.client
import http.server
import ipaddress
import json
import os
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "FakeApiServer",
    "RecordedRequest",
    "TlsFiles",
    "make_client_cert",
    "make_tls",
    "parse_label_selector",
]

_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_WORKLOADS = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}
_KIND_TO_RESOURCE = {kind: resource for resource, kind in _WORKLOADS.items()}
_SECRET_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_MAX_SECRET_BYTES = 1024 * 1024
_MAX_ANNOTATION_BYTES = 256 * 1024
_PROXY_TIMEOUT = 5.0
_MAX_BODY = 4 * 1024 * 1024

ProxyHandler = Callable[[str, dict[str, str]], tuple[int, bytes]]


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str
    key: str
    ca_key: str = ""


def _write_key(path: str, key: ec.EllipticCurvePrivateKey) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def make_tls(directory: str) -> TlsFiles:
    """Write a self-signed CA and a server certificate for 127.0.0.1 into ``directory``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-kubernetes-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(
        ca=os.path.join(directory, "ca.crt"),
        cert=os.path.join(directory, "apiserver.crt"),
        key=os.path.join(directory, "apiserver.key"),
        ca_key=os.path.join(directory, "ca.key"),
    )
    with open(files.ca, "wb") as handle:
        handle.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(files.cert, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(files.key, key)
    _write_key(files.ca_key, ca_key)
    return files


def make_client_cert(tls: TlsFiles, directory: str, user: str) -> tuple[str, str]:
    """Issue a client certificate for ``user`` (its CN) from the fake's CA; (cert, key)."""
    with open(tls.ca, "rb") as handle:
        ca_cert = x509.load_pem_x509_certificate(handle.read())
    with open(tls.ca_key, "rb") as handle:
        ca_key = serialization.load_pem_private_key(handle.read(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, f"{user.replace(':', '_')}.crt")
    key_path = os.path.join(directory, f"{user.replace(':', '_')}.key")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return cert_path, key_path


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    at: float = 0.0  # time.monotonic() when it arrived
    user: str = ""


def new_deployment(namespace: str, name: str) -> dict[str, Any]:
    """A Deployment as the API server returns it (the fields that matter here)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": 1,
            "resourceVersion": "1000",
            "labels": {"app": name},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"team": "agentos"}},
                "spec": {"containers": [{"name": "agentos", "image": "agentos:1"}]},
            },
        },
    }


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Merge-patch semantics for maps: key by key, ``null`` deletes, the rest replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        elif isinstance(value, dict):
            target[key] = {}
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _status(code: int, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    document = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    document.update(extra)
    return document


class _ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.document = _status(code, reason, message, **extra)
        self.code = code


def _invalid(kind: str, name: str, causes: list[tuple[str, str]]) -> _ApiError:
    text = "; ".join(f"{path}: {message}" for path, message in causes)
    return _ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {text}',
        details={
            "name": name,
            "kind": kind.lower() + "s",
            "causes": [
                {"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes
            ],
        },
    )


# -- label selectors ---------------------------------------------------------------------

_SELECTOR_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[A-Za-z0-9_./-]+)")
_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")

Requirement = tuple[str, str, tuple[str, ...]]  # key, operator, values


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse a label selector with kube's grammar; ValueError on a syntax error."""
    tokens: list[str] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _SELECTOR_TOKEN.match(text, position)
        if match is None or not match.group(1):
            raise ValueError(f"unable to parse requirement: unexpected character at {position}")
        tokens.append(match.group(1))
        position = match.end()
    requirements: list[Requirement] = []
    index = 0

    def take() -> str:
        nonlocal index
        if index >= len(tokens):
            raise ValueError("unable to parse requirement: unexpected end of selector")
        index += 1
        return tokens[index - 1]

    def key(word: str) -> str:
        if len(word) > 316 or not _LABEL_KEY.fullmatch(word):
            raise ValueError(f"unable to parse requirement: invalid label key {word!r}")
        return word

    def value(word: str) -> str:
        if len(word) > 63 or not _LABEL_VALUE.fullmatch(word):
            raise ValueError(f"unable to parse requirement: invalid label value {word!r}")
        return word

    while index < len(tokens):
        word = take()
        if word == "!":
            requirements.append((key(take()), "!", ()))
        else:
            name = key(word)
            operator = tokens[index] if index < len(tokens) else ","
            if operator == ",":
                requirements.append((name, "exists", ()))
            elif operator in ("=", "==", "!="):
                take()
                requirements.append((name, "!=" if operator == "!=" else "=", (value(take()),)))
            elif operator in ("in", "notin"):
                take()
                if take() != "(":
                    raise ValueError("unable to parse requirement: expected '(' after in/notin")
                values: list[str] = []
                while True:
                    word = take()
                    if word == ")":
                        break
                    if word == ",":
                        continue
                    values.append(value(word))
                requirements.append((name, operator, tuple(values)))
            else:
                raise ValueError(f"unable to parse requirement: unexpected {operator!r}")
        if index < len(tokens):
            if take() != ",":
                raise ValueError("unable to parse requirement: expected ','")
            if index >= len(tokens):
                raise ValueError("unable to parse requirement: trailing ','")
    return requirements


def _selector_matches(requirements: list[Requirement], labels: dict[str, str]) -> bool:
    for key, operator, values in requirements:
        present = key in labels
        if operator == "exists" and not present:
            return False
        if operator == "!" and present:
            return False
        if operator == "=" and labels.get(key) != values[0]:
            return False
        if operator == "!=" and labels.get(key) == values[0]:
            return False
        if operator == "in" and labels.get(key) not in values:
            return False
        if operator == "notin" and present and labels[key] in values:
            return False
    return True


def _field_value(obj: dict[str, Any], path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node if isinstance(node, str) else ("" if node is None else str(node))


_FIELDS = ("metadata.name", "metadata.namespace", "status.phase", "spec.nodeName")


def _parse_field_selector(text: str) -> list[tuple[str, bool, str]]:
    result = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"([A-Za-z.]+)\s*(!=|==|=)\s*(.*)", part)
        if match is None:
            raise ValueError(f"invalid selector: '{part}'; can't understand '{part}'")
        if match.group(1) not in _FIELDS:
            raise ValueError(f'field label not supported: "{match.group(1)}"')
        result.append((match.group(1), match.group(2) != "!=", match.group(3)))
    return result


# -- JSON patch (RFC 6902) ---------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(document: Any, parts: list[str]) -> tuple[Any, str]:
    node = document
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise ValueError(f"doc is missing path: {'/'.join(parts)}")
    return node, parts[-1]


def _get(document: Any, parts: list[str]) -> Any:
    if not parts:
        return document
    node, last = _parent(document, parts)
    if isinstance(node, dict) and last in node:
        return node[last]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node[int(last)]
    raise ValueError(f"doc is missing path: {'/'.join(parts)}")


def _json_patch(document: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise TypeError("a JSON patch is a list of operations")
    document = copy.deepcopy(document)
    for op in operations:
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise TypeError("each JSON patch operation is an object with 'op'")
        kind = op["op"]
        parts = _pointer(str(op.get("path", "")))
        if kind == "test":
            if _get(document, parts) != op.get("value"):
                raise ValueError(f"testing value /{'/'.join(parts)} failed: test failed")
            continue
        if kind in ("move", "copy"):
            value = copy.deepcopy(_get(document, _pointer(str(op.get("from", "")))))
            if kind == "move":
                node, last = _parent(document, _pointer(str(op["from"])))
                del node[int(last) if isinstance(node, list) else last]
            kind = "add"
        else:
            value = copy.deepcopy(op.get("value"))
        if not parts:
            raise ValueError("cannot replace the whole document")
        node, last = _parent(document, parts)
        if kind == "add":
            if isinstance(node, dict):
                node[last] = value
            elif isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), value)
            else:
                raise ValueError(f"doc is missing path: {op.get('path')}")
        elif kind == "remove":
            _get(document, parts)
            del node[int(last) if isinstance(node, list) else last]
        elif kind == "replace":
            _get(document, parts)
            node[int(last) if isinstance(node, list) else last] = value
        else:
            raise ValueError(f"unexpected kind: {kind}")
    return document


# -- state -------------------------------------------------------------------------------


@dataclass
class _Rule:
    verb: str
    resource: str
    subresource: str | None
    name: str | None
    token: str | None

    def matches(self, user: str, verb: str, resource: str, sub: str | None, name: str) -> bool:
        return (
            self.verb in ("*", verb)
            and self.resource in ("*", resource)
            and self.subresource == sub
            and self.name in (None, name)
            and self.token in (None, user)
        )


@dataclass
class _Failure:
    status: int
    method: str | None
    path: re.Pattern[str] | None
    retry_after: int | None


@dataclass
class _Pod:
    obj: dict[str, Any]
    proxy: dict[int, tuple[str, int]]
    handler: ProxyHandler | None


@dataclass
class _State:
    tokens: dict[str, str]  # token -> user name
    annotation: str
    allowed_verbs: set[str]
    deployments: dict[tuple[str, str], dict[str, Any]]
    rbac: bool = False
    grants: list[_Rule] = field(default_factory=list)
    denials: list[_Rule] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    rollouts: int = 0
    revision: int = 1000
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], _Pod] = field(default_factory=dict)
    workloads: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    strip_annotation: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_revision(self) -> str:
        self.revision += 1
        return str(self.revision)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validate_secret(secret: dict[str, Any], name: str) -> None:
    causes: list[tuple[str, str]] = []
    data = secret.get("data") or {}
    if not isinstance(data, dict):
        raise _ApiError(400, "BadRequest", "data: expected a map")
    total = 0
    for key, value in data.items():
        if len(key) > 253 or not _SECRET_KEY_RE.fullmatch(key):
            causes.append(
                (f"data[{key}]", "a valid config key must consist of alphanumeric characters,"
                 " '-', '_' or '.'")
            )
        if not isinstance(value, str):
            raise _ApiError(400, "BadRequest", f"data[{key}]: expected a base64 string")
        try:
            total += len(base64.b64decode(value, validate=True))
        except ValueError:
            raise _ApiError(
                400, "BadRequest", f"illegal base64 data in data[{key}]"
            ) from None
    if total > _MAX_SECRET_BYTES:
        causes.append(("data", f"Too long: may not be more than {_MAX_SECRET_BYTES} bytes"))
    meta = secret.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise _ApiError(400, "BadRequest", "metadata.annotations: expected a map of strings")
    size = sum(len(k) + len(v) for k, v in annotations.items())
    if size > _MAX_ANNOTATION_BYTES:
        causes.append(
            ("metadata.annotations", f"Too long: must have at most {_MAX_ANNOTATION_BYTES} bytes")
        )
    for key in annotations:
        if not _LABEL_KEY.fullmatch(key) or len(key.rpartition("/")[2]) > 63:
            causes.append((f"metadata.annotations[{key}]", "name part must be a valid name"))
    if causes:
        raise _invalid("Secret", name, causes)


def _fold_string_data(secret: dict[str, Any]) -> None:
    string_data = secret.pop("stringData", None)
    if string_data is None:
        return
    if not isinstance(string_data, dict) or not all(
        isinstance(v, str) for v in string_data.values()
    ):
        raise _ApiError(400, "BadRequest", "stringData: expected a map of strings")
    data = secret.setdefault("data", {}) or {}
    secret["data"] = data
    for key, value in string_data.items():
        data[key] = base64.b64encode(value.encode()).decode()


# -- HTTP --------------------------------------------------------------------------------

_SECRET_RE = re.compile(r"/api/v1/namespaces/([^/]+)/secrets(?:/([^/]+))?")
_POD_RE = re.compile(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?")
_PROXY_RE = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/proxy(/.*)?")
_WORKLOAD_RE = re.compile(
    r"/apis/apps/v1/namespaces/([^/]+)/(deployments|statefulsets|daemonsets)(?:/([^/]+))?"
)
_EVENTS_RE = re.compile(r"/api/v1/namespaces/([^/]+)/events")


class _Response:
    def __init__(
        self, status: int, document: Any = None, *, raw: bytes | None = None,
        content_type: str = "application/json", headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.payload = raw if raw is not None else json.dumps(document).encode()
        self.content_type = content_type
        self.headers = headers or {}


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "fake-kube-apiserver"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes
    state: _State
    owner: FakeApiServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read :attr:`FakeApiServer.requests` instead."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _user_from_cert(self) -> str | None:
        try:
            cert = self.connection.getpeercert()  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            return None
        if not cert:
            return None
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.close_connection = True
            response = _Response(413, _status(413, "RequestEntityTooLarge", "too large"))
            self._send(response)
            return
        body = self.rfile.read(length) if length else b""
        record = RecordedRequest(
            method, self.path, dict(self.headers.items()), body, at=time.monotonic()
        )
        state = self.state
        with state.lock:
            state.requests.append(record)
        try:
            response = self._decide(method, body, record)
        except _ApiError as error:
            response = _Response(error.code, error.document)
        record.status = response.status
        hook = self.owner.on_request
        if hook is not None:
            hook(record)
        self._send(response)

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.payload)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(response.payload)

    # -- authentication, failures, authorisation ------------------------------------
    def _authenticate(self) -> str:
        user = self._user_from_cert()
        if user is not None:
            return user
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        with self.state.lock:
            # The scheme is case-insensitive (kube-apiserver: strings.EqualFold), and the
            # official client's in-cluster loader sends "bearer".
            name = self.state.tokens.get(token) if scheme.lower() == "bearer" else None
        if name is None:
            raise _ApiError(401, "Unauthorized", "Unauthorized")
        return token

    def _injected(self, method: str, path: str) -> _Response | None:
        state = self.state
        with state.lock:
            for index, failure in enumerate(state.failures):
                if failure.method not in (None, method):
                    continue
                if failure.path is not None and not failure.path.search(path):
                    continue
                del state.failures[index]
                break
            else:
                return None
        code = failure.status
        reason = {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "Timeout"}.get(
            code, "InternalError"
        )
        headers = {}
        extra: dict[str, Any] = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = str(failure.retry_after)
            extra["details"] = {"retryAfterSeconds": failure.retry_after}
        return _Response(code, _status(code, reason, "injected failure", **extra), headers=headers)

    def _authorize(
        self, user: str, verb: str, resource: str, sub: str | None, name: str, namespace: str,
        group: str = "",
    ) -> None:
        state = self.state
        with state.lock:
            denied = any(r.matches(user, verb, resource, sub, name) for r in state.denials)
            if resource == "deployments" and verb in ("get", "patch") and name:
                allowed = verb in state.allowed_verbs
            elif state.rbac:
                allowed = any(r.matches(user, verb, resource, sub, name) for r in state.grants)
            else:
                allowed = True
            display = state.tokens.get(user, user)
        if allowed and not denied:
            return
        full = f"{resource}/{sub}" if sub else resource
        subject = f"{resource}.{group}" if group else resource
        target = f'{subject} "{name}"' if name else subject
        raise _ApiError(
            403,
            "Forbidden",
            f'{target} is forbidden: User "{display}" cannot {verb} resource "{full}"'
            f' in API group "{group}" in the namespace "{namespace}"',
            details={"name": name, "group": group, "kind": resource},
        )

    def _decide(self, method: str, body: bytes, record: RecordedRequest) -> _Response:
        user = self._authenticate()
        record.user = user
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        injected = self._injected(method, path)
        if injected is not None:
            return injected
        if match := _PROXY_RE.fullmatch(path):
            namespace, target = unquote(match.group(1)), unquote(match.group(2))
            rest = unquote(match.group(3) or "/")
            if split.query:
                rest += "?" + split.query
            return self._proxy(method, user, namespace, target, rest)
        if match := _SECRET_RE.fullmatch(path):
            namespace, name = unquote(match.group(1)), unquote(match.group(2) or "")
            return self._secret(method, user, namespace, name, body, query)
        if match := _POD_RE.fullmatch(path):
            namespace, name = unquote(match.group(1)), unquote(match.group(2) or "")
            return self._pods(method, user, namespace, name, query)
        if match := _WORKLOAD_RE.fullmatch(path):
            namespace, resource, name = match.groups()
            return self._workloads(method, user, namespace, resource, name or "", body, query)
        if match := _EVENTS_RE.fullmatch(path):
            return self._event(method, user, match.group(1), body)
        raise _ApiError(404, "NotFound", "the server could not find the requested resource")

    # -- secrets ------------------------------------------------------------------------
    def _secret(
        self, method: str, user: str, namespace: str, name: str, body: bytes, query: dict
    ) -> _Response:
        if not name:
            raise _ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        verb = {"GET": "get", "PATCH": "patch", "PUT": "update"}.get(method)
        if verb is None:
            raise _ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        self._authorize(user, verb, "secrets", None, name, namespace)
        state = self.state
        with state.lock:
            current = state.secrets.get((namespace, name))
            if current is None:
                raise _ApiError(
                    404, "NotFound", f'secrets "{name}" not found',
                    details={"name": name, "kind": "secrets"},
                )
            if method == "GET":
                return _Response(200, copy.deepcopy(current))
            if method == "PUT":
                updated = self._decode_object(body)
                meta = updated.get("metadata") if isinstance(updated.get("metadata"), dict) else {}
                if updated.get("kind", "Secret") != "Secret":
                    raise _ApiError(400, "BadRequest", "the object is not a Secret")
                if meta.get("name") != name:
                    raise _ApiError(
                        400, "BadRequest",
                        f"the name of the object ({meta.get('name')}) does not match the name"
                        f" on the URL ({name})",
                    )
                if not meta.get("resourceVersion"):
                    # Secrets allow an unconditional update, as on the real server.
                    meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            else:
                updated = self._patched(current, body)
            return _Response(200, self._store_secret(namespace, name, current, updated))

    def _decode_object(self, body: bytes) -> dict[str, Any]:
        try:
            document = json.loads(body)
        except ValueError:
            raise _ApiError(400, "BadRequest", "the request body is not JSON") from None
        if not isinstance(document, dict):
            raise _ApiError(400, "BadRequest", "the request body is not a JSON object")
        return document

    def _patched(self, current: dict[str, Any], body: bytes) -> dict[str, Any]:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type not in _PATCH_TYPES:
            raise _ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types"
                " include: " + ", ".join(_PATCH_TYPES),
            )
        if content_type == "application/apply-patch+yaml":
            raise _ApiError(415, "UnsupportedMediaType", "server-side apply is not faked")
        try:
            patch = json.loads(body)
        except ValueError:
            raise _ApiError(400, "BadRequest", "the request body is not JSON") from None
        if content_type == "application/json-patch+json":
            try:
                return _json_patch(current, patch)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                message = str(exc)
            raise _ApiError(422, "Invalid", message)
        if not isinstance(patch, dict):
            raise _ApiError(400, "BadRequest", "the patch is not a JSON object")
        updated = copy.deepcopy(current)
        _merge(updated, patch)
        return updated

    def _store_secret(
        self, namespace: str, name: str, current: dict[str, Any], updated: dict[str, Any]
    ) -> dict[str, Any]:
        """Check and write ``updated`` over ``current`` (lock held); return the new object."""
        state = self.state
        meta = updated.get("metadata")
        if not isinstance(meta, dict):
            raise _ApiError(400, "BadRequest", "metadata: expected an object")
        stored_rv = current["metadata"]["resourceVersion"]
        asked_rv = meta.get("resourceVersion")
        if asked_rv is not None and asked_rv != stored_rv:
            raise _ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on secrets "{name}": the object has been'
                " modified; please apply your changes to the latest version and try again",
                details={"name": name, "kind": "secrets"},
            )
        if meta.get("name") != name or meta.get("namespace", namespace) != namespace:
            raise _invalid("Secret", name, [("metadata.name", "field is immutable")])
        _fold_string_data(updated)
        _validate_secret(updated, name)
        if current.get("immutable") and (
            updated.get("data") != current.get("data") or not updated.get("immutable")
        ):
            raise _invalid("Secret", name, [("data", "field is immutable when `immutable` is set")])
        for kept in ("uid", "creationTimestamp", "namespace"):
            meta[kept] = current["metadata"][kept]
        meta["resourceVersion"] = state.next_revision()
        updated["kind"], updated["apiVersion"] = "Secret", "v1"
        if not updated.get("data"):
            updated.pop("data", None)
        state.secrets[(namespace, name)] = updated
        return copy.deepcopy(updated)

    # -- pods -----------------------------------------------------------------------------
    def _list(
        self, kind: str, items: list[dict[str, Any]], query: dict[str, str]
    ) -> dict[str, Any]:
        try:
            selector = parse_label_selector(query.get("labelSelector", ""))
            fields = _parse_field_selector(query.get("fieldSelector", ""))
        except ValueError as exc:
            message = str(exc)
            raise _ApiError(400, "BadRequest", message) from None
        chosen = [
            item
            for item in items
            if _selector_matches(selector, item["metadata"].get("labels") or {})
            and all((_field_value(item, f) == v) == eq for f, eq, v in fields)
        ]
        chosen.sort(key=lambda item: item["metadata"]["name"])
        start = 0
        if query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(query["continue"]))
                start = int(token["start"])
            except (ValueError, KeyError, TypeError):
                raise _ApiError(400, "BadRequest", "continue key is not valid") from None
        meta: dict[str, Any] = {"resourceVersion": str(self.state.revision)}
        limit = int(query.get("limit") or 0)
        if limit > 0 and start + limit < len(chosen):
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"start": start + limit}).encode()
            ).decode()
            meta["remainingItemCount"] = len(chosen) - start - limit
            chosen = chosen[start : start + limit]
        else:
            chosen = chosen[start:]
        return {
            "kind": kind,
            "apiVersion": "v1" if kind == "PodList" else "apps/v1",
            "metadata": meta,
            "items": copy.deepcopy(chosen),
        }

    def _pods(
        self, method: str, user: str, namespace: str, name: str, query: dict[str, str]
    ) -> _Response:
        if method != "GET":
            raise _ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        self._authorize(user, "get" if name else "list", "pods", None, name, namespace)
        state = self.state
        with state.lock:
            if name:
                pod = state.pods.get((namespace, name))
                if pod is None:
                    raise _ApiError(404, "NotFound", f'pods "{name}" not found',
                                    details={"name": name, "kind": "pods"})
                return _Response(200, copy.deepcopy(pod.obj))
            items = [p.obj for (ns, _), p in state.pods.items() if ns == namespace]
            return _Response(200, self._list("PodList", items, query))

    def _proxy(
        self, method: str, user: str, namespace: str, target: str, rest: str
    ) -> _Response:
        if method != "GET":
            raise _ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        parts = target.split(":")
        if len(parts) == 3:
            parts = parts[1:]  # scheme:name:port
        name = parts[0]
        port_text = parts[1] if len(parts) > 1 else ""
        self._authorize(user, "get", "pods", "proxy", name, namespace)
        state = self.state
        with state.lock:
            pod = state.pods.get((namespace, name))
            if pod is None:
                raise _ApiError(404, "NotFound", f'pods "{name}" not found',
                                details={"name": name, "kind": "pods"})
            phase = pod.obj.get("status", {}).get("phase")
            port = _resolve_port(pod.obj, port_text)
            handler = pod.handler
            address = pod.proxy.get(port) if port is not None else None
        unreachable = _ApiError(
            503, "ServiceUnavailable",
            f"error trying to reach service: dial tcp 10.0.0.1:{port_text or 80}:"
            " connect: connection refused",
        )
        if phase != "Running" or port is None:
            raise unreachable
        headers = {
            k: v for k, v in self.headers.items()
            if k.lower() not in ("authorization", "host", "connection", "content-length")
        }
        if handler is not None:
            status, payload = handler(rest, headers)
            return _Response(status, raw=payload, content_type="application/json")
        if address is None:
            raise unreachable
        connection = http.client.HTTPConnection(*address, timeout=_PROXY_TIMEOUT)
        try:
            connection.request("GET", rest, headers=headers)
            answer = connection.getresponse()
            payload = answer.read(_MAX_BODY)
            content_type = answer.getheader("Content-Type") or "application/octet-stream"
            status = answer.status
        except OSError:
            raise unreachable from None
        finally:
            connection.close()
        return _Response(status, raw=payload, content_type=content_type)

    # -- workloads and events -----------------------------------------------------------
    def _workloads(
        self, method: str, user: str, namespace: str, resource: str, name: str, body: bytes,
        query: dict[str, str],
    ) -> _Response:
        if resource == "deployments" and name and method == "PATCH":
            return self._patch_deployment(user, namespace, name, body)
        if method != "GET":
            raise _ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        self._authorize(user, "get" if name else "list", resource, None, name, namespace, "apps")
        state = self.state
        with state.lock:
            if name:
                if resource == "deployments" and (namespace, name) in state.deployments:
                    return _Response(200, copy.deepcopy(state.deployments[(namespace, name)]))
                obj = state.workloads.get((resource, namespace, name))
                if obj is None:
                    raise _ApiError(404, "NotFound", f'{resource}.apps "{name}" not found')
                return _Response(200, copy.deepcopy(obj))
            items = [
                o for (r, ns, _), o in state.workloads.items() if (r, ns) == (resource, namespace)
            ]
            if resource == "deployments":
                items += [o for (ns, _), o in state.deployments.items() if ns == namespace]
            return _Response(200, self._list(_WORKLOADS[resource] + "List", items, query))

    def _patch_deployment(self, user: str, namespace: str, name: str, body: bytes) -> _Response:
        self._authorize(user, "patch", "deployments", None, name, namespace, "apps")
        state = self.state
        with state.lock:
            deployment = state.deployments.get((namespace, name))
        if deployment is None:
            raise _ApiError(404, "NotFound", f'deployments.apps "{name}" not found')
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type not in _PATCH_TYPES:
            raise _ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types"
                " include: " + ", ".join(_PATCH_TYPES),
            )
        if content_type != "application/strategic-merge-patch+json":
            raise _ApiError(415, "UnsupportedMediaType", "only strategic merge is faked")
        patch = self._decode_object(body)
        problem = self._only_the_annotation(patch)
        if problem:
            raise _ApiError(422, "Invalid", problem)
        with state.lock:
            if state.strip_annotation:  # a mutating admission webhook dropping it
                patch = {}
            before = copy.deepcopy(deployment["spec"]["template"])
            _merge(deployment, patch)
            if deployment["spec"]["template"] != before:
                meta = deployment["metadata"]
                meta["generation"] += 1
                meta["resourceVersion"] = state.next_revision()
                state.rollouts += 1
            return _Response(200, copy.deepcopy(deployment))

    def _only_the_annotation(self, patch: dict[str, Any]) -> str | None:
        node: Any = patch
        for key in ("spec", "template", "metadata", "annotations"):
            if not isinstance(node, dict) or list(node) != [key]:
                return f"the patch must touch only spec.template.metadata.annotations (at {key})"
            node = node[key]
        if not isinstance(node, dict) or list(node) != [self.state.annotation]:
            return f"the patch must set exactly the annotation {self.state.annotation}"
        if not isinstance(node[self.state.annotation], str):
            return "annotation values must be strings"
        return None

    def _event(self, method: str, user: str, namespace: str, body: bytes) -> _Response:
        if method != "POST":
            raise _ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        self._authorize(user, "create", "events", None, "", namespace)
        event = self._decode_object(body)
        with self.state.lock:
            event.setdefault("metadata", {})["resourceVersion"] = self.state.next_revision()
            self.state.events.append(event)
        return _Response(201, event)


def _resolve_port(pod: dict[str, Any], text: str) -> int | None:
    """A numeric port as is; a named one looked up in the pod's containers (as kube does)."""
    if not text:
        return 80
    if text.isdigit():
        return int(text)
    spec = pod.get("spec", {})
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        for port in container.get("ports", []) or []:
            if port.get("name") == text:
                return int(port["containerPort"])
    return None


class FakeApiServer:
    """Serve the fake kube-apiserver over HTTPS on 127.0.0.1; use as a context manager.

    :param tls: certificate files from :func:`make_tls`.
    :param token: the bearer token accepted (more with :meth:`accept_token`).
    :param deployments: ``(namespace, name)`` pairs of Deployments the rollout action patches.
    :param annotation: the only annotation a Deployment PATCH may touch.
    :param allowed_verbs: what the sidecar's Role grants on those Deployments.
    :param rbac: when True, every other request needs a :meth:`grant`; when False (the
        default) everything else is allowed unless :meth:`deny` says otherwise.
    """

    def __init__(
        self,
        tls: TlsFiles,
        *,
        token: str,
        deployments: tuple[tuple[str, str], ...] = (("agentos", "agentos-model-policy"),),
        annotation: str = "secrets.agentos.io/fingerprint",
        allowed_verbs: tuple[str, ...] = ("get", "patch"),
        rbac: bool = False,
    ) -> None:
        self.tls = tls
        self.on_request: Callable[[RecordedRequest], None] | None = None
        self._state = _State(
            tokens={token: "system:serviceaccount:agentos:default"},
            annotation=annotation,
            allowed_verbs=set(allowed_verbs),
            deployments={key: new_deployment(*key) for key in deployments},
            rbac=rbac,
        )
        handler = type("Handler", (_Handler,), {"state": self._state, "owner": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 128
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        context.load_verify_locations(tls.ca)
        context.verify_mode = ssl.CERT_OPTIONAL  # client certificates authenticate too
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle ------------------------------------------------------------------
    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    # -- controls -------------------------------------------------------------------
    def accept_token(self, token: str, *, only: bool = False, user: str | None = None) -> None:
        """Accept ``token`` as ``user`` (shown in 403 messages); ``only`` drops the others."""
        with self._state.lock:
            if only:
                self._state.tokens.clear()
            self._state.tokens[token] = user or f"token-user-{len(self._state.tokens)}"

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` authenticated requests with ``status``.

        ``method`` and ``path`` (a regular expression searched in the URL path) narrow
        which requests fail; ``retry_after`` adds the header a 429 carries.
        """
        pattern = re.compile(path) if path else None
        with self._state.lock:
            self._state.failures.extend(
                [_Failure(status, method, pattern, retry_after)] * times
            )

    def strip_annotation(self, enabled: bool = True) -> None:
        """Behave like an admission webhook that drops the annotation from patches."""
        self._state.strip_annotation = enabled

    def _rule(
        self, verb: str, resource: str, subresource: str | None, name: str | None,
        token: str | None,
    ) -> _Rule:
        if subresource is None and "/" in resource:
            resource, subresource = resource.split("/", 1)
        return _Rule(verb, resource, subresource, name, token)

    def grant(
        self, verb: str, resource: str, *, subresource: str | None = None,
        name: str | None = None, token: str | None = None,
    ) -> None:
        """Allow ``verb`` on ``resource`` (``pods/proxy`` or subresource=), for ``token`` or all."""
        with self._state.lock:
            self._state.grants.append(self._rule(verb, resource, subresource, name, token))

    def deny(
        self, verb: str, resource: str, *, subresource: str | None = None,
        name: str | None = None, token: str | None = None,
    ) -> None:
        """Forbid ``verb`` on ``resource``, whatever is granted (a Role without that rule)."""
        with self._state.lock:
            self._state.denials.append(self._rule(verb, resource, subresource, name, token))

    def set_rbac(self, strict: bool) -> None:
        with self._state.lock:
            self._state.rbac = strict

    # -- secrets ----------------------------------------------------------------------
    def put_secret(
        self,
        namespace: str,
        name: str,
        data: dict[str, bytes],
        *,
        annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        owner_references: list[dict[str, Any]] | None = None,
        managed_fields: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Create or replace a Secret (as its owner would); bumps its resourceVersion."""
        with self._state.lock:
            old = self._state.secrets.get((namespace, name))
            meta: dict[str, Any] = {
                "name": name,
                "namespace": namespace,
                "uid": old["metadata"]["uid"] if old else str(uuid.uuid4()),
                "creationTimestamp": old["metadata"]["creationTimestamp"] if old else _now(),
                "resourceVersion": self._state.next_revision(),
            }
            if annotations:
                meta["annotations"] = dict(annotations)
            if labels:
                meta["labels"] = dict(labels)
            if owner_references:
                meta["ownerReferences"] = copy.deepcopy(owner_references)
            if managed_fields:
                meta["managedFields"] = copy.deepcopy(managed_fields)
            secret: dict[str, Any] = {
                "kind": "Secret",
                "apiVersion": "v1",
                "metadata": meta,
                "type": "Opaque",
            }
            if data:
                secret["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
            self._state.secrets[(namespace, name)] = secret
            return copy.deepcopy(secret)

    def set_secret_data(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        """Replace only the data, atomically (a controller's update: metadata is kept)."""
        with self._state.lock:
            secret = self._state.secrets[(namespace, name)]
            secret["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
            if not data:
                secret.pop("data")
            secret["metadata"]["resourceVersion"] = self._state.next_revision()

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._state.lock:
            secret = self._state.secrets.get((namespace, name))
            return copy.deepcopy(secret) if secret is not None else None

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The Secret's data decoded (what a kubelet projects into the volume)."""
        secret = self.secret(namespace, name)
        if secret is None:
            return None
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    # -- pods and workloads -------------------------------------------------------------
    def add_pod(
        self,
        namespace: str,
        pod: dict[str, Any],
        *,
        proxy: dict[int, tuple[str, int]] | None = None,
        proxy_handler: ProxyHandler | None = None,
    ) -> dict[str, Any]:
        """Add (or replace) a pod; ``proxy``/``proxy_handler`` serve its ``pods/proxy``."""
        obj = copy.deepcopy(pod)
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", "Pod")
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        obj.setdefault("spec", {}).setdefault("containers", [])
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Running")
        status.setdefault("podIP", "10.0.0.1")
        status.setdefault(
            "conditions", [{"type": "Ready", "status": "True"}] if status["phase"] == "Running"
            else []
        )
        with self._state.lock:
            meta["resourceVersion"] = self._state.next_revision()
            self._state.pods[(namespace, meta["name"])] = _Pod(
                obj, dict(proxy or {}), proxy_handler
            )
            return copy.deepcopy(obj)

    def remove_pod(self, namespace: str, name: str) -> None:
        with self._state.lock:
            self._state.pods.pop((namespace, name), None)
            self._state.next_revision()

    def set_pod_ready(self, namespace: str, name: str, ready: bool) -> None:
        with self._state.lock:
            obj = self._state.pods[(namespace, name)].obj
            conditions = [
                c for c in obj["status"].get("conditions", []) if c.get("type") != "Ready"
            ]
            conditions.append({"type": "Ready", "status": "True" if ready else "False"})
            obj["status"]["conditions"] = conditions
            obj["metadata"]["resourceVersion"] = self._state.next_revision()

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._state.lock:
            pod = self._state.pods.get((namespace, name))
            return copy.deepcopy(pod.obj) if pod is not None else None

    def add_workload(self, kind: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Add a Deployment, StatefulSet or DaemonSet (``kind`` as in its manifest)."""
        resource = _KIND_TO_RESOURCE[kind]
        stored = copy.deepcopy(obj)
        stored.setdefault("apiVersion", "apps/v1")
        stored["kind"] = kind
        meta = stored.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        with self._state.lock:
            meta["resourceVersion"] = self._state.next_revision()
            self._state.workloads[(resource, namespace, meta["name"])] = stored
            return copy.deepcopy(stored)

    # -- observations ---------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._state.lock:
            return copy.deepcopy(self._state.events)

    @property
    def rollouts(self) -> int:
        """How many times a pod template changed (= rollouts the controller would start)."""
        return self._state.rollouts

    def count(self, method: str) -> int:
        return sum(1 for r in self.requests if r.method == method)

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        with self._state.lock:
            return copy.deepcopy(self._state.deployments[(namespace, name)])

    def annotation(self, namespace: str, name: str) -> str | None:
        template = self.deployment(namespace, name)["spec"]["template"]
        value = template["metadata"].get("annotations", {}).get(self._state.annotation)
        return value if isinstance(value, str) else None
