"""Helpers for the ``rotate`` tests: a kubeconfig for the fake API server, simulated pods.

A simulated pod (:class:`SimPod`) stands in for "kubelet + sidecar" where the real
processes are not needed: its ``/status`` (served through the fake's ``pods/proxy``) is
computed from the Secret data its kubelet last projected, with the real fingerprints
(``fingerprint_bytes``) and the contract's shape, and it authenticates ``X-AgentOS-Token``
against the projected ``AGENTOS_SERVICE_TOKEN``/``_PREVIOUS`` like the sidecar does. The
kubelet syncs on every read unless ``frozen`` (a kubelet that never syncs). Tests with
the real sidecar process are in test_rotate_real_sidecar.py.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import sys
import threading
from pathlib import Path
from typing import Any

import yaml
from fake_apiserver import FakeApiServer

from agentos_secrets.secret import fingerprint_bytes

NS = "agentos"
SECRET = "agentos-secrets"
OPERATOR_TOKEN = "operator-token-not-a-secret-value"
KEY = "AGENTOS_SERVICE_TOKEN"
OLD = b"old-service-token-value-0123456789"
OTHER = b"federation-shared-value-abcdef"


class SimPod:
    """A pod whose kubelet projects the fake's Secret and whose sidecar serves /status."""

    def __init__(
        self, api: FakeApiServer, name: str, *, frozen: bool = False,
        action_fails: bool = False, app: str = "agentos-model-policy",
        metrics: dict[str, Any] | None = None, sidecar: bool = True,
        secret: str = SECRET,
    ) -> None:
        self.api = api
        self.name = name
        self.secret = secret
        self.frozen = frozen
        self.action_fails = action_fails
        self.metrics = metrics
        self.lock = threading.Lock()
        self.mounted: dict[str, bytes] = dict(api.secret_data(NS, secret) or {})
        self.applied: dict[str, bytes] = dict(self.mounted)
        self.tokens_seen: list[str] = []
        self.reads = 0
        annotations = {}
        if metrics is not None:
            annotations["rotate.agentos.dev/verify-metrics"] = "8081/metrics"
        containers = [{"name": "agentos", "image": "agentos:1"}]
        init = []
        if sidecar:
            init.append({"name": "secrets-sidecar", "image": "sidecar:1",
                         "restartPolicy": "Always",
                         "ports": [{"name": "metrics", "containerPort": 9095}]})
        self.manifest = {
            "metadata": {
                "name": name,
                "labels": {"app": app, "app.kubernetes.io/part-of": "agentos"},
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": f"{app}-abc", "uid": "u", "controller": True}],
            },
            "spec": {
                "initContainers": init,
                "containers": containers,
                "volumes": [{"name": "agentos-secrets", "secret": {"secretName": secret}}],
            },
        }
        api.add_pod(NS, self.manifest, proxy_handler=self.handle if sidecar else None)

    def sync(self) -> None:
        data = self.api.secret_data(NS, self.secret) or {}
        self.mounted = dict(data)
        if not self.action_fails:
            self.applied = dict(data)

    def handle(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        with self.lock:
            self.reads += 1
            if not self.frozen:
                self.sync()
            token = next((v for k, v in headers.items() if k.lower() == "x-agentos-token"), None)
            if token is not None:
                self.tokens_seen.append(token)
            accepted = {self.mounted.get(KEY), self.mounted.get(KEY + "_PREVIOUS")} - {None}
            if token is None or token.encode() not in accepted:
                return 401, b'{"version":1,"error":"unauthorized"}'
            if path.startswith("/metrics"):
                return self._metrics()
            if not path.startswith("/status"):
                return 404, b"not found"
            keys = []
            for key in sorted(self.mounted):
                mounted = fingerprint_bytes(self.mounted[key])
                applied = self.applied.get(key)
                applied_fp = fingerprint_bytes(applied) if applied is not None else None
                keys.append({"name": key, "watch": 0, "mounted": mounted,
                             "applied": applied_fp, "pending": applied_fp != mounted})
            failed = self.action_fails and self.applied != self.mounted
            body = {
                "version": 1, "pod": self.name, "action": "rollout", "ready": True,
                "keys": keys, "pending": any(k["pending"] for k in keys),
                "last_action": {"result": "failed" if failed else "ok", "at": None,
                                "attempts": 3 if failed else 1,
                                "error": "HTTP 403 from the API server" if failed else None},
            }
            return 200, json.dumps(body).encode()

    def _metrics(self) -> tuple[int, bytes]:
        assert self.metrics is not None
        lines = [
            "# TYPE agentos_secrets_verify_total counter",
            f'agentos_secrets_verify_total{{name="{KEY}",result="current"}} 10',
            f'agentos_secrets_verify_total{{name="{KEY}",result="previous"}}'
            f' {self.metrics.get("previous", 0)}',
            "# TYPE agentos_secrets_verify_last_previous_timestamp_seconds gauge",
            f'agentos_secrets_verify_last_previous_timestamp_seconds{{name="{KEY}"}}'
            f' {self.metrics.get("last", 0)}',
        ]
        return 200, ("\n".join(lines) + "\n").encode()


def write_kubeconfig(
    path: Path, servers: dict[str, FakeApiServer], *, user: dict[str, Any] | None = None,
    namespace: str = NS,
) -> Path:
    """A kubeconfig with one context per server (its name), CA data and a token user."""
    clusters, contexts = [], []
    for name, server in servers.items():
        ca = base64.b64encode(Path(server.tls.ca).read_bytes()).decode()
        clusters.append({"name": name, "cluster": {"server": server.url,
                                                   "certificate-authority-data": ca}})
        contexts.append({"name": name, "context": {"cluster": name, "user": "operator",
                                                   "namespace": namespace}})
    document = {
        "apiVersion": "v1", "kind": "Config", "current-context": next(iter(servers)),
        "clusters": clusters, "contexts": contexts,
        "users": [{"name": "operator", "user": user or {"token": OPERATOR_TOKEN}}],
    }
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


FAST = ["--gate-timeout", "5", "--poll", "0.05", "--grace", "0", "--quiet", "0",
        "--qps", "1000", "--burst", "1000"]


def rotate(kubeconfig: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run ``agentos-secrets rotate`` in-process; (exit code, stdout, stderr)."""
    from agentos_secrets.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["rotate", "--kubeconfig", str(kubeconfig), *args])
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def annotations(api: FakeApiServer, name: str = SECRET) -> dict[str, str]:
    secret = api.secret(NS, name)
    assert secret is not None
    return secret["metadata"].get("annotations", {})
