"""A local HTTPS stand-in for the Kubernetes API server's Deployment endpoint.

No cluster runs where this project is tested, so the ``rollout`` action is tested against
this server on 127.0.0.1. It checks every request the way kube-apiserver would, in the
same order, and answers with the same ``Status`` objects:

1. TLS: a fresh CA and a server certificate for 127.0.0.1/localhost are generated with
   ``cryptography``; a client must trust that CA (``--ca-file``) to connect at all.
2. Authentication: ``Authorization: Bearer <token>`` must equal one of the accepted
   tokens, else 401 ``Unauthorized``.
3. Routing: only ``/apis/apps/v1/namespaces/{ns}/deployments/{name}``; other paths 404.
4. Authorisation: the verb (``get``/``patch``) must be allowed (the Role grants exactly
   those two), else 403 ``Forbidden``.
5. For PATCH: ``Content-Type`` must be a patch type, else 415; only
   ``application/strategic-merge-patch+json`` is implemented. The body must be a JSON
   object, else 400.
6. Stricter than the real server, on purpose: the patch must touch exactly one key,
   ``spec.template.metadata.annotations[<annotation>]``, with a string value, else 422.
   The sidecar must never change anything else in a Deployment it does not own.
7. The patch is merged into the in-memory Deployment (maps merge key by key, as in a
   strategic merge patch); when the pod template changed, ``metadata.generation`` goes up
   and :attr:`FakeApiServer.rollouts` counts one rollout, as the Deployment controller
   would start one. A patch that changes nothing changes nothing.

Failures can be injected (:meth:`FakeApiServer.fail_next`) and every request is recorded
(:attr:`FakeApiServer.requests`) so tests can count them and scan them for leaks.
"""

from __future__ import annotations

import copy
import datetime
import http.server
import ipaddress
import json
import os
import re
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["FakeApiServer", "RecordedRequest", "TlsFiles", "make_tls"]

_PATH_RE = re.compile(r"/apis/apps/v1/namespaces/([^/]+)/deployments/([^/?]+)")
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str
    key: str


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
    )
    with open(files.ca, "wb") as handle:
        handle.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(files.cert, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return files


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


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
    """Strategic-merge semantics for maps: key by key, ``null`` deletes."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass
class _State:
    tokens: set[str]
    annotation: str
    allowed_verbs: set[str]
    deployments: dict[tuple[str, str], dict[str, Any]]
    failures: deque[int] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    rollouts: int = 0
    strip_annotation: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "fake-kube-apiserver"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes
    state: _State

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

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = RecordedRequest(method, self.path, dict(self.headers.items()), body)
        state = self.state
        with state.lock:
            state.requests.append(record)
            status, document = self._decide(method, body)
        record.status = status
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _decide(self, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        state = self.state
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme != "Bearer" or token not in state.tokens:
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if state.failures:
            code = state.failures.popleft()
            reason = {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(
                code, "InternalError"
            )
            return code, _status(code, reason, "injected failure")
        match = _PATH_RE.fullmatch(self.path)
        if match is None:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        namespace, name = match.groups()
        verb = {"GET": "get", "PATCH": "patch", "PUT": "update", "POST": "create"}[method]
        if verb not in state.allowed_verbs:
            return 403, _status(
                403,
                "Forbidden",
                f'deployments.apps "{name}" is forbidden: cannot {verb} resource "deployments"'
                f' in API group "apps" in the namespace "{namespace}"',
            )
        deployment = state.deployments.get((namespace, name))
        if deployment is None:
            return 404, _status(404, "NotFound", f'deployments.apps "{name}" not found')
        if method == "GET":
            return 200, copy.deepcopy(deployment)
        if method != "PATCH":
            return 405, _status(405, "MethodNotAllowed", "the server does not allow this method")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type not in _PATCH_TYPES:
            return 415, _status(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types"
                " include: " + ", ".join(_PATCH_TYPES),
            )
        if content_type != "application/strategic-merge-patch+json":
            return 415, _status(415, "UnsupportedMediaType", "only strategic merge is faked")
        try:
            patch = json.loads(body)
        except ValueError:
            return 400, _status(400, "BadRequest", "the request body is not JSON")
        if not isinstance(patch, dict):
            return 400, _status(400, "BadRequest", "the patch is not a JSON object")
        problem = self._only_the_annotation(patch)
        if problem:
            return 422, _status(422, "Invalid", problem)
        if state.strip_annotation:  # a mutating admission webhook dropping it
            patch = {}
        before = copy.deepcopy(deployment["spec"]["template"])
        _merge(deployment, patch)
        if deployment["spec"]["template"] != before:
            meta = deployment["metadata"]
            meta["generation"] += 1
            meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
            state.rollouts += 1
        return 200, copy.deepcopy(deployment)

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


class FakeApiServer:
    """Serve Deployments over HTTPS on 127.0.0.1; use as a context manager.

    :param tls: certificate files from :func:`make_tls`.
    :param token: the service account token accepted (more with :meth:`accept_token`).
    :param deployments: ``(namespace, name)`` pairs that exist.
    :param annotation: the only annotation a PATCH may touch.
    :param allowed_verbs: what the service account's Role grants.
    """

    def __init__(
        self,
        tls: TlsFiles,
        *,
        token: str,
        deployments: tuple[tuple[str, str], ...] = (("agentos", "agentos-model-policy"),),
        annotation: str = "secrets.agentos.io/fingerprint",
        allowed_verbs: tuple[str, ...] = ("get", "patch"),
    ) -> None:
        self.tls = tls
        self._state = _State(
            tokens={token},
            annotation=annotation,
            allowed_verbs=set(allowed_verbs),
            deployments={key: new_deployment(*key) for key in deployments},
        )
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
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
    def accept_token(self, token: str, *, only: bool = False) -> None:
        with self._state.lock:
            if only:
                self._state.tokens.clear()
            self._state.tokens.add(token)

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` authenticated requests with ``status``."""
        with self._state.lock:
            self._state.failures.extend([status] * times)

    def strip_annotation(self, enabled: bool = True) -> None:
        """Behave like an admission webhook that drops the annotation from patches."""
        self._state.strip_annotation = enabled

    # -- observations ---------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

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
