"""Gates: wait until every consuming pod reports what the phase needs, or say who lags.

A gate never guesses. Each round it lists the running pods that mount the Secret (so a
pod that appears during a rollout or a scale-up is picked up, and one that is gone is
forgotten), reads the ``/status`` of every pod not yet converged, and passes only when
all of them report the expected fingerprints. A pod that converged is not polled again
(the request budget goes to the ones that lag). On timeout it fails naming each lagging
pod and why: sidecar unreachable, still mounts the old value, action failing or
pending, pod not ready. A new pod that mounts the current Secret reports the current
fingerprints and so counts as converged like any other.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .discover import Pod, list_pods
from .kube import Kube, KubeError
from .progress import Reporter
from .status import PodStatus, StatusReader

__all__ = ["Expect", "GateFailed", "GateNode", "run_gate"]


@dataclass(frozen=True)
class Expect:
    """Per key: the fingerprint every pod must have applied, or None for 'absent'."""

    keys: tuple[tuple[str, str | None], ...]

    def describe(self) -> str:
        parts = []
        for key, fingerprint in self.keys:
            parts.append(f"{key} absent" if fingerprint is None else f"{key} = {fingerprint}")
        return ", ".join(parts)

    def lag(self, status: PodStatus) -> str | None:
        """None when ``status`` meets the expectation, else the reason it does not."""
        if status.error is not None:
            return status.error
        for key, fingerprint in self.keys:
            entry = status.keys.get(key)
            mounted = entry.mounted if entry else None
            if fingerprint is None:
                # Listed at all means the file is still in the volume: unreadable, or its
                # fingerprint still being derived ("deriving") is not "absent".
                if mounted is not None:
                    return f"still mounts {key}"
                if entry is not None:
                    return f"still mounts {key} ({entry.reason or 'not readable'})"
                if status.truncated:
                    return (f"cannot confirm {key} absent (/status is truncated: the pod has"
                            " more keys than it lists)")
                continue
            if mounted != fingerprint:
                if mounted is None and entry is not None and entry.reason:
                    return f"{key} not readable in the pod yet ({entry.reason})"
                what = "nothing" if mounted is None else "another value"
                return f"still mounts {what} under {key} (kubelet has not synced)"
            applied = entry.applied if entry else None
            if applied != fingerprint:
                if status.action_error:
                    return f"action failing ({status.action_error})"
                if status.action == "rollout":
                    return (f"{key} mounted; the app keeps its old values until the rollout"
                            " replaces this pod")
                return f"{key} mounted but not applied yet (action pending)"
        return None


@dataclass
class GateNode:
    """One Secret's consumers: where to list pods and how to read their status."""

    label: str
    kube: Kube
    namespace: str
    secret: str
    reader: StatusReader
    selector: str | None = None


@dataclass
class Lagging:
    node: str
    pod: str
    reason: str


@dataclass
class GateFailed(Exception):
    phase: str
    lagging: list[Lagging] = field(default_factory=list)
    problem: str = ""

    def __str__(self) -> str:
        return f"{self.phase}: gate failed"


def _label(node: GateNode, pod: str, many: bool) -> str:
    return f"{node.label}/{pod}" if many else pod


def run_gate(
    phase: str,
    nodes: list[GateNode],
    expect: Expect,
    *,
    timeout: float,
    poll: float,
    reporter: Reporter,
    workers: int = 8,
) -> int:
    """Block until every pod of every node meets ``expect``; return how many pods.

    Raises :class:`GateFailed` (with each lagging pod and its reason) on timeout, and at
    once when listing pods is forbidden (RBAC: waiting cannot fix it).
    """
    start = time.monotonic()
    deadline = start + timeout
    converged: dict[tuple[str, str], bool] = {}
    many = len(nodes) > 1
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while True:
            lagging: list[Lagging] = []
            total = 0
            seen: set[tuple[str, str]] = set()
            for node in nodes:
                try:
                    pods = list_pods(node.kube, node.namespace, node.secret,
                                     selector=node.selector)
                except KubeError as exc:
                    if exc.status in (401, 403):
                        raise GateFailed(phase, problem=f"{node.label}: {exc.message}") from None
                    lagging.append(Lagging(node.label, "*", f"cannot list pods ({exc.message})"))
                    continue
                total += len(pods)
                todo: list[Pod] = []
                for pod in pods:
                    key = (node.label, pod.uid)
                    seen.add(key)
                    if not converged.get(key):
                        todo.append(pod)
                for pod, status in zip(todo, pool.map(node.reader.status, todo), strict=True):
                    if status.error and status.error.startswith("pods/proxy forbidden"):
                        raise GateFailed(phase, problem=f"{node.label}: {status.error}")
                    reason = expect.lag(status)
                    if reason is None:
                        converged[(node.label, pod.uid)] = True
                        continue
                    if not pod.ready:
                        reason += "; pod not ready"
                    lagging.append(Lagging(node.label, _label(node, pod.name, many), reason))
            for gone in set(converged) - seen:
                del converged[gone]
            done = sum(1 for key in seen if converged.get(key))
            waited = time.monotonic() - start
            reporter.progress(phase, done, total, waited, [lag.pod for lag in lagging])
            if not lagging:
                return total
            if time.monotonic() + poll > deadline:
                raise GateFailed(phase, lagging)
            time.sleep(poll)
