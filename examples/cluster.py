"""A local cluster for the orchestrated rotation: an API server, a Deployment, N pods.

No Kubernetes cluster runs where this project is tested, so this harness puts together
the parts a rotation touches, each as real as it can be on one machine:

* the API server: ``tests/fake_apiserver.py`` over TLS on loopback, holding the Secret
  ``agentos-secrets``, the Deployment and its pods (as kube-apiserver, it strips the
  ``Authorization`` header before proxying ``pods/{name}:9095/proxy/...`` to a pod);
* per pod: its own Secret volume (a temporary directory), the service
  (``examples.service``, the receiver: ``Loader.verify`` per request), the sender
  (``examples.load``, reading its token through ``get()`` before every request from the
  pod's own volume and calling the other replicas), and a real ``agentos-secrets sidecar``
  process watching the volume; both reachable through the API server's pod proxy (the
  sidecar's ``/status`` on 9095, the service's verify counters on 8082 ``/metrics``, named
  by the pod annotation ``rotate.agentos.dev/verify-metrics``);
* per pod, a :class:`Kubelet` thread: it projects the API's Secret into the pod's volume
  with :class:`~agentos_secrets.testing.AtomicWriter` (the kubelet's algorithm) after its
  own random delay per change, the kubelet's sync period plus cache delay (60 to 90 s in a
  cluster; seeded and scaled down to seconds here). It can also be told never to sync.

The sidecar's action is ``none`` by default: the service and the sender read the token
through the Loader on every use (one ``stat`` per call), so there is nothing to reload,
and the sidecar's ``/status`` then reports what is mounted as applied. That is the honest
setting for such a service; ``action="http"`` (the service's ``/-/reload``) is there for a
service that derives state from its secrets.

A ``kubeconfig`` (CA data, a bearer token user, the namespace) is written for the
``agentos-secrets rotate`` CLI. :meth:`Cluster.stop` stops every process and thread and
checks none is left (:attr:`Cluster.left_behind`). Secret values are never printed.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import random
import secrets
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from agentos_secrets.testing import AtomicWriter
from examples.launch import load_summary, service_port, spawn_service, start_load
from examples.procs import Child, Children, python_module

__all__ = [
    "DEPLOYMENT",
    "NAMESPACE",
    "SECRET",
    "SERVICE_PORT",
    "SIDECAR_PORT",
    "VERIFY_METRICS_ANNOTATION",
    "Cluster",
    "Kubelet",
    "Pod",
    "Projection",
    "fake_apiserver",
]

NAMESPACE = "agentos"
SECRET = "agentos-secrets"
DEPLOYMENT = "agentos-model-policy"
SIDECAR_CONTAINER = "secrets-sidecar"
SIDECAR_PORT = 9095  # the sidecar's containerPort (named `metrics`) in deploy/k8s
SERVICE_PORT = 8082
MOUNT_PATH = "/etc/agentos/secrets"
VERIFY_METRICS_ANNOTATION = "rotate.agentos.dev/verify-metrics"
VOLUME_MODE = 0o440  # the manifests' defaultMode
STARTUP_TIMEOUT_S = 20.0

_FAKE_API_PATH = Path(__file__).resolve().parents[1] / "tests" / "fake_apiserver.py"

#: What a kubelet fetches: the Secret's (resourceVersion, data), or None when absent.
Source = Callable[[], tuple[str, dict[str, bytes]] | None]


def fake_apiserver() -> ModuleType:
    """``tests/fake_apiserver.py``, imported under the name the tests use.

    Loaded by path (not as ``tests.fake_apiserver``) so that the demo, the benchmarks and
    the tests share one module object, whichever imports it first.
    """
    module = sys.modules.get("fake_apiserver")
    if module is None:
        spec = importlib.util.spec_from_file_location("fake_apiserver", _FAKE_API_PATH)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load the fake API server from {_FAKE_API_PATH}")
        module = importlib.util.module_from_spec(spec)
        sys.modules["fake_apiserver"] = module
        spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the kubelet ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """One write of the Secret into a pod's volume (monotonic seconds)."""

    resource_version: str
    seen_at: float  # when the kubelet first saw a Secret newer than its volume
    written_at: float
    delay: float  # the random delay drawn for this change


class Kubelet:
    """Project a Secret into one pod's volume, after a random delay per change.

    ``source()`` returns the Secret's ``(resourceVersion, data)`` (or None when absent,
    which, like the kubelet, keeps what is mounted). When the Secret's resourceVersion
    differs from what the volume holds, a delay is drawn from ``delay`` (seconds, uniform,
    from ``rng``); when it is over, the Secret *as it is then* is written (a kubelet syncs
    the latest object, not the one that woke it up). ``syncs=False``: the kubelet never
    updates the volume after the first mount (a node that lost its API connection).
    """

    def __init__(
        self,
        name: str,
        volume: str,
        source: Source,
        *,
        delay: tuple[float, float],
        rng: random.Random,
        syncs: bool = True,
        poll: float = 0.05,
        mode: int = VOLUME_MODE,
    ) -> None:
        low, high = delay
        if not 0 <= low <= high:
            raise ValueError(f"kubelet delay: need 0 <= low <= high, got {delay}")
        self.name = name
        self.writer = AtomicWriter(volume, mode=mode)
        self.source = source
        self.delay = (float(low), float(high))
        self.rng = rng
        self.syncs = syncs
        self.poll = poll
        self.projections: list[Projection] = []
        self.mounted_version: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubelet-{name}", daemon=True)

    def mount(self) -> None:
        """The first projection, before the pod's containers start (no delay)."""
        current = self.source()
        if current is None:
            raise RuntimeError(f"pod {self.name}: the Secret does not exist, cannot mount it")
        self._write(current, time.monotonic(), 0.0)

    def _write(self, current: tuple[str, dict[str, bytes]], seen: float, delay: float) -> None:
        version, data = current
        self.writer.write(data)
        self.mounted_version = version
        self.projections.append(Projection(version, seen, time.monotonic(), delay))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        due: float | None = None
        seen = drawn = 0.0
        while not self._stop.wait(self.poll):
            if not self.syncs:
                due = None
                continue
            current = self.source()
            if current is None or current[0] == self.mounted_version:
                continue
            now = time.monotonic()
            if due is None:
                drawn = self.rng.uniform(*self.delay)
                seen, due = now, now + drawn
            if now >= due:
                self._write(current, seen, drawn)
                due = None


# -- pods ----------------------------------------------------------------------------------


@dataclass
class Pod:
    """One replica: its volume, kubelet and processes."""

    name: str
    uid: str
    volume: str
    kubelet: Kubelet
    service: Child
    service_port: int
    sidecar: Child
    sidecar_port: int
    sender: Child | None = None
    children: list[Child] = field(default_factory=list)


def pod_manifest(
    name: str, uid: str, *, namespace: str, deployment: str, secret: str, template_hash: str
) -> dict[str, Any]:
    """A pod as the API server returns it, shaped like deploy/k8s (the fields rotate reads)."""
    labels = {
        "app": deployment,
        "app.kubernetes.io/name": deployment,
        "app.kubernetes.io/part-of": "agentos",
        "pod-template-hash": template_hash,
    }
    mount = {"name": "agentos-secrets", "mountPath": MOUNT_PATH, "readOnly": True}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "labels": labels,
            # where rotate reads the service's verify counters before it drops a value
            "annotations": {VERIFY_METRICS_ANNOTATION: f"{SERVICE_PORT}/metrics"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{deployment}-{template_hash}",
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"rs/{deployment}")),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "initContainers": [
                {
                    "name": SIDECAR_CONTAINER,
                    "image": "ghcr.io/nexixai/agentos-secrets-sidecar:0.1.0",
                    "restartPolicy": "Always",
                    "command": ["agentos-secrets", "sidecar"],
                    "ports": [
                        {"name": "metrics", "containerPort": SIDECAR_PORT, "protocol": "TCP"}
                    ],
                    "volumeMounts": [mount],
                }
            ],
            "containers": [
                {
                    "name": "agentos",
                    "image": "ghcr.io/nexixai/agentos:1.0.2",
                    "ports": [{"name": "http", "containerPort": SERVICE_PORT, "protocol": "TCP"}],
                    "volumeMounts": [mount],
                }
            ],
            "volumes": [
                {
                    "name": "agentos-secrets",
                    "secret": {"secretName": secret, "defaultMode": VOLUME_MODE},
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def deployment_manifest(
    namespace: str, name: str, secret: str, replicas: int, template_hash: str
) -> dict[str, Any]:
    template = pod_manifest(
        "template",
        "",
        namespace=namespace,
        deployment=name,
        secret=secret,
        template_hash=template_hash,
    )
    labels = dict(template["metadata"]["labels"])
    labels.pop("pod-template-hash")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": 1,
            "resourceVersion": "1000",
            "labels": labels,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": template["spec"]},
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


def _http_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _wait_ready(name: str, sidecar: Child, listen: int) -> None:
    """Until the sidecar's ``/readyz`` answers 200 (its watch armed, baseline recorded)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if sidecar.process.poll() is not None:
            raise RuntimeError(f"the sidecar of {name} exited:\n" + sidecar.output())
        try:
            if _http_status(listen, "/readyz") == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the sidecar of {name} did not become ready:\n" + sidecar.output())


# -- the cluster ---------------------------------------------------------------------------


class Cluster:
    """The fake API server, one Deployment and ``replicas`` pods; a context manager.

    :param data: the Secret's keys and values (bytes); never printed.
    :param kubelet_delay: seconds (low, high) a pod's kubelet waits after a change.
    :param seed: seeds every kubelet's delays (the same seed, the same delays).
    :param grace: the services' ``Loader`` grace window, seconds (0: only the
        orchestration keeps requests accepted).
    :param action: the sidecars' ``--action``: ``none`` or ``http``.
    :param sidecar_args: more sidecar flags (e.g. ``--debounce 0.2``).
    """

    def __init__(
        self,
        data: Mapping[str, bytes],
        *,
        replicas: int = 3,
        kubelet_delay: tuple[float, float] = (0.5, 3.0),
        seed: int = 0,
        grace: float = 0.0,
        action: str = "none",
        sidecar_args: Sequence[str] = ("--debounce", "0.2"),
        namespace: str = NAMESPACE,
        secret: str = SECRET,
        deployment: str = DEPLOYMENT,
    ) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        if action not in ("none", "http"):
            raise ValueError("action must be none or http")
        self.initial = {k: bytes(v) for k, v in data.items()}
        self.replicas = replicas
        self.kubelet_delay = kubelet_delay
        self.rng = random.Random(seed)
        self.grace = grace
        self.action = action
        self.sidecar_args = list(sidecar_args)
        self.namespace = namespace
        self.secret = secret
        self.deployment = deployment
        self.template_hash = "5d8f7c6b9"
        self.pods: list[Pod] = []
        self.removed: list[Pod] = []
        self.children = Children()
        self.api: Any = None
        self.api_token = secrets.token_urlsafe(24)
        self.left_behind: list[str] = []
        self.sender_summaries: dict[str, dict[str, Any]] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.workdir = ""
        self.kubeconfig = ""

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        fake = fake_apiserver()
        self._tmp = tempfile.TemporaryDirectory(prefix="agentos-cluster-")
        self.workdir = self._tmp.name
        tls_dir = os.path.join(self.workdir, "apiserver")
        os.mkdir(tls_dir, 0o700)
        tls = fake.make_tls(tls_dir)
        self.api = fake.FakeApiServer(tls, token=self.api_token, deployments=())
        self.api.__enter__()
        self.api.put_secret(
            self.namespace,
            self.secret,
            self.initial,
            labels={"app.kubernetes.io/part-of": "agentos"},
        )
        self.api.add_workload(
            "Deployment",
            self.namespace,
            deployment_manifest(
                self.namespace, self.deployment, self.secret, self.replicas, self.template_hash
            ),
        )
        self._write_kubeconfig(tls.ca)
        self.start_pods(self.replicas)

    def stop(self) -> None:
        """Stop senders, kubelets, every process and the API server; record leftovers."""
        if any(pod.sender is not None for pod in self.pods):
            try:
                self.stop_senders()
            except RuntimeError:
                pass  # the caller asked to stop; the summary is then missing, not fatal
        for pod in self.pods + self.removed:
            pod.kubelet.stop()
        self.children.stop_all()
        self.left_behind = [
            f"{c.name} (pid {c.pid})" for c in self.children.started if c.process.poll() is None
        ]
        self.left_behind += [
            f"kubelet {pod.name}" for pod in self.pods + self.removed if pod.kubelet.alive
        ]
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _write_kubeconfig(self, ca_file: str) -> None:
        with open(ca_file, "rb") as handle:
            ca_data = base64.b64encode(handle.read()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.api.url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": "rotate", "user": {"token": self.api_token}}],
            "contexts": [
                {
                    "name": "local",
                    "context": {
                        "cluster": "local",
                        "user": "rotate",
                        "namespace": self.namespace,
                    },
                }
            ],
            "current-context": "local",
        }
        self.kubeconfig = os.path.join(self.workdir, "kubeconfig")
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(config, handle)  # JSON is YAML: every kubeconfig reader takes it

    # -- the Secret ------------------------------------------------------------------------
    def _source(self) -> tuple[str, dict[str, bytes]] | None:
        """The Secret as a kubelet fetches it: one consistent read of version and data."""
        obj = self.api.secret(self.namespace, self.secret) if self.api is not None else None
        if obj is None:
            return None
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        return str(obj["metadata"]["resourceVersion"]), data

    def secret_version(self) -> str:
        current = self._source()
        if current is None:
            raise RuntimeError(f"the Secret {self.namespace}/{self.secret} is gone")
        return current[0]

    def secret_data(self) -> dict[str, bytes]:
        current = self._source()
        return {} if current is None else current[1]

    # -- pods ------------------------------------------------------------------------------
    def start_pod(self, *, syncs: bool = True) -> Pod:
        """A new replica: volume mounted with the Secret as it is now, then its processes,
        then registered with the API server (its sidecar and service ports proxied)."""
        return self.start_pods(1, syncs=syncs)[0]

    def start_pods(self, count: int, *, syncs: bool = True) -> list[Pod]:
        """``count`` new replicas, their processes started together.

        Names, uids and kubelet seeds are drawn in order first, so a seed gives the same
        pods whatever order the processes come up in. Every process is started from this
        thread (``PR_SET_PDEATHSIG`` fires when the *thread* that forked a child ends, so a
        worker thread would take its children with it); only the waiting overlaps.
        """
        plans = [self._plan_pod(syncs) for _ in range(count)]
        services = [
            spawn_service(self.children, kubelet.writer.target_dir, self.grace, f"service {name}")
            for name, _, _, kubelet in plans
        ]
        ports = [service_port(service) for service in services]
        sidecars = [
            self._spawn_sidecar(name, kubelet.writer.target_dir, root, port)
            for (name, _, root, kubelet), port in zip(plans, ports, strict=True)
        ]
        pods: list[Pod] = []
        try:
            for (name, uid, _, kubelet), service, port, (sidecar, listen) in zip(
                plans, services, ports, sidecars, strict=True
            ):
                _wait_ready(name, sidecar, listen)
                pod = Pod(
                    name, uid, kubelet.writer.target_dir, kubelet, service, port, sidecar, listen
                )
                pod.children += [service, sidecar]
                self._register(pod)
                kubelet.start()
                pods.append(pod)
        finally:
            self.pods.extend(pods)  # also on failure: stop() must stop their kubelets
        return pods

    def _plan_pod(self, syncs: bool) -> tuple[str, str, str, Kubelet]:
        suffix = "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        name = f"{self.deployment}-{self.template_hash}-{suffix}"
        uid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        root = os.path.join(self.workdir, "pods", name)
        os.makedirs(root, 0o700)
        kubelet = Kubelet(
            name,
            os.path.join(root, "secrets"),
            self._source,
            delay=self.kubelet_delay,
            rng=random.Random(self.rng.random()),
            syncs=syncs,
        )
        kubelet.mount()  # before the containers start, as the kubelet does
        return name, uid, root, kubelet

    def _register(self, pod: Pod) -> None:
        """The pod in the API server, its sidecar and service ports proxied to the processes."""
        self.api.add_pod(
            self.namespace,
            pod_manifest(
                pod.name,
                pod.uid,
                namespace=self.namespace,
                deployment=self.deployment,
                secret=self.secret,
                template_hash=self.template_hash,
            ),
            proxy={
                SIDECAR_PORT: ("127.0.0.1", pod.sidecar_port),
                SERVICE_PORT: ("127.0.0.1", pod.service_port),
            },
        )

    def _spawn_sidecar(
        self, name: str, volume: str, root: str, service_port: int
    ) -> tuple[Child, int]:
        """Start the pod's sidecar (not waiting); it and its listen port."""
        listen = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTOS_")}
        env["POD_NAME"] = name
        env["AGENTOS_METRICS_REQUIRE_AUTH"] = "1"  # as in deploy/k8s: /status needs the token
        env["AGENTOS_SERVICE_TOKEN_FILE"] = os.path.join(volume, "AGENTOS_SERVICE_TOKEN")
        action = ["--action", self.action]
        if self.action == "http":
            action += ["--url", f"http://127.0.0.1:{service_port}/-/reload"]
        sidecar = self.children.start(
            f"sidecar {name}",
            python_module(
                "agentos_secrets", "sidecar",
                "--watch", volume,
                *action,
                "--state-file", os.path.join(root, "sidecar-state.json"),
                "--listen", f"127.0.0.1:{listen}",
                "--log-format", "json",
                "--min-interval", "0",
                "--max-per-hour", "100000",
                *self.sidecar_args,
            ),
            env=env,
        )  # fmt: skip
        return sidecar, listen

    def remove_pod(self, pod: Pod) -> None:
        """Delete a pod: gone from the API, its sender, sidecar and service stopped."""
        self.api.remove_pod(self.namespace, pod.name)
        pod.kubelet.stop()
        for child in reversed(pod.children):
            self.children.stop(child)
        self.pods.remove(pod)
        self.removed.append(pod)

    def replace_pod(self, pod: Pod, *, syncs: bool = True) -> Pod:
        """What the ReplicaSet controller does when a pod dies: delete it, start another
        (which mounts the Secret as it is at its creation)."""
        self.remove_pod(pod)
        return self.start_pod(syncs=syncs)

    def pod(self, name: str) -> Pod:
        for pod in self.pods:
            if pod.name == name:
                return pod
        raise KeyError(name)

    # -- load ------------------------------------------------------------------------------
    def start_senders(self, rate: float) -> None:
        """Each pod's sender calls the other replicas' receivers in turn, ``rate`` requests
        per second in all, with the token its own volume holds (``get()`` per request)."""
        per_pod = rate / len(self.pods)
        for pod in self.pods:
            targets = [p.service_port for p in self.pods if p is not pod] or [pod.service_port]
            pod.sender = start_load(
                self.children, f"sender {pod.name}", targets, pod.volume, per_pod, 0.0
            )
            pod.children.append(pod.sender)

    def stop_senders(self) -> dict[str, Any]:
        """Stop every sender; return their summed counts (``requests``, ``accepted``,
        ``rejected``, ``errors``) and keep each one's in :attr:`sender_summaries`."""
        total = {"requests": 0, "accepted": 0, "rejected": 0, "errors": 0}
        for pod in self.pods:
            if pod.sender is None:
                continue
            sender, pod.sender = pod.sender, None
            summary = load_summary(self.children, sender)
            self.sender_summaries[pod.name] = summary
            for key in total:
                total[key] += int(summary[key])
        return total

    # -- observations ----------------------------------------------------------------------
    def converged_at(self, version: str) -> dict[str, float | None]:
        """Per pod: when its volume first held ``version`` of the Secret (or None)."""
        result: dict[str, float | None] = {}
        for pod in self.pods:
            at = next(
                (p.written_at for p in pod.kubelet.projections if p.resource_version == version),
                None,
            )
            result[pod.name] = at
        return result

    def rotate_env(self) -> dict[str, str]:
        """The environment for ``agentos-secrets rotate``: the kubeconfig, no AGENTOS_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTOS_")}
        env["KUBECONFIG"] = self.kubeconfig
        return env

    def rotate_argv(self, *args: str) -> list[str]:
        """``agentos-secrets rotate ...`` aimed at this cluster's Secret."""
        return python_module(
            "agentos_secrets",
            "rotate",
            *args,
            "--kubeconfig", self.kubeconfig,
            "--namespace", self.namespace,
            "--secret", self.secret,
        )  # fmt: skip
