"""Read a pod's sidecar ``/status`` (and the app's verify counters) through ``pods/proxy``.

Only ``pods/proxy`` ``get`` is needed, never ``exec``: the request goes to
``GET /api/v1/namespaces/NS/pods/POD:PORT/proxy/status``. kube-apiserver removes the
``Authorization`` header of an authenticated request before proxying it, so the token
the sidecar checks travels in ``X-AgentOS-Token`` (docs/contracts.md).

What comes back is treated as hostile (the pod network is not trusted): one attempt per
poll with a short timeout, at most 256 KiB, JSON parsed with every field type-checked, and
anything unexpected is a "malformed /status" lag reason, never an exception that stops the
rotation. The answer holds fingerprints only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .discover import Pod
from .kube import Kube, KubeError

__all__ = [
    "KeyStatus", "PodStatus", "StatusReader", "VerifyCounters", "parse_status", "same_pod",
]

MAX_STATUS_BYTES = 256 * 1024
MAX_METRICS_BYTES = 1024 * 1024
MAX_KEYS = 1024
STATUS_TIMEOUT = (3.0, 5.0)


@dataclass(frozen=True)
class KeyStatus:
    mounted: str | None
    applied: str | None
    pending: bool
    reason: str | None = None  # why mounted is null (e.g. "deriving", "unreadable")


@dataclass
class PodStatus:
    """What one poll of one pod found: its keys, or why they could not be read."""

    keys: dict[str, KeyStatus] = field(default_factory=dict)
    error: str | None = None  # sidecar unreachable, 401, malformed, ...
    action: str = ""
    action_error: str | None = None
    ready: bool | None = None
    pod: str | None = None  # the pod name the sidecar reports
    truncated: bool = False  # keys were left out: an unlisted key may still be mounted


def _short(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return "".join(c for c in value[:64] if c.isprintable())
    return None


def _fp(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("fp1:") and len(value) <= 64:
        return value
    return None


def parse_status(body: bytes) -> PodStatus:
    """The keys of a ``/status`` document (contract version 1); errors as ``.error``."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return PodStatus(error="malformed /status (not JSON)")
    # type(), not ==: JSON true and 1.0 compare equal to 1 in Python.
    if not isinstance(document, dict) or type(document.get("version")) is not int or (
        document["version"] != 1
    ):
        return PodStatus(error="malformed /status (not a version 1 object)")
    keys = document.get("keys")
    if not isinstance(keys, list):
        return PodStatus(error="malformed /status (no keys list)")
    truncated = document.get("truncated", False)
    if not isinstance(truncated, bool):
        return PodStatus(error="malformed /status (truncated is not a boolean)")
    result = PodStatus(truncated=truncated or len(keys) > MAX_KEYS)
    pod = document.get("pod")
    result.pod = pod[:253] if isinstance(pod, str) else None
    for entry in keys[:MAX_KEYS]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            return PodStatus(error="malformed /status (a key entry without a name)")
        name = entry["name"]
        if name in result.keys:
            continue  # the first watched directory wins, as for the Loader's secret_dirs
        result.keys[name] = KeyStatus(
            mounted=_fp(entry.get("mounted")),
            applied=_fp(entry.get("applied")),
            pending=entry.get("pending") is True,
            reason=_short(entry.get("reason")),
        )
    action = document.get("action")
    result.action = action if isinstance(action, str) and len(action) < 32 else ""
    if isinstance(document.get("ready"), bool):
        result.ready = document["ready"]
    last = document.get("last_action")
    if isinstance(last, dict) and last.get("result") == "failed":
        error = last.get("error")
        result.action_error = error[:200] if isinstance(error, str) else "failed"
    return result


def same_pod(reported: str | None, name: str) -> bool:
    """Whether a ``/status`` ``pod`` field names pod ``name``.

    The sidecar reports ``POD_NAME`` (the pod's name), else its host name, which the
    kubelet sets to the pod's name cut to 63 characters without a trailing '-' or '.'.
    """
    if not reported:
        return False
    return reported == name or (len(name) > 63 and reported == name[:63].rstrip("-."))


@dataclass(frozen=True)
class VerifyCounters:
    """The app's verify counters for one key (``agentos_secrets_verify_*``)."""

    previous_total: float
    last_previous: float | None  # Unix time of the last 'previous' match


class StatusReader:
    """Polls pods through one API server with the tokens accepted at this phase."""

    def __init__(self, kube: Kube, namespace: str, tokens: list[bytes]) -> None:
        self.kube = kube
        self.namespace = namespace
        self.tokens = tokens
        self._preferred: dict[str, int] = {}

    def _get(self, pod: Pod, port: int, path: str, max_bytes: int) -> tuple[int, bytes] | str:
        """(status, body), or an error text for the lag report."""
        order = list(range(len(self.tokens))) or [-1]
        first = self._preferred.get(pod.uid)
        if first is not None and first in order:
            order.remove(first)
            order.insert(0, first)
        status, body = 0, b""
        for index in order:
            headers = {}
            if index >= 0:
                headers["X-AgentOS-Token"] = self.tokens[index].decode("utf-8", "replace")
            try:
                response = self.kube.request(
                    "GET",
                    f"/api/v1/namespaces/{self.namespace}/pods/{pod.name}:{port}/proxy/{path}",
                    headers=headers, max_bytes=max_bytes, timeout=STATUS_TIMEOUT, attempts=1,
                    raise_for_status=False,
                )
            except (ValueError, UnicodeError, OSError) as exc:
                # Only the type is kept: the exception may carry the header value.
                problem = type(exc).__name__
                return f"request failed ({problem})"
            except KubeError as exc:
                if exc.status == 403:
                    return f"pods/proxy forbidden ({exc.message})"
                if exc.status == 404:
                    return "pod gone"
                return f"sidecar unreachable ({exc.message})"
            status, body = response.status, response.body
            if status != 401:
                self._preferred[pod.uid] = index
                return status, body
        return status, body

    def status(self, pod: Pod) -> PodStatus:
        if pod.status_port is None:
            return PodStatus(error="no secrets-sidecar container (its /status cannot be read)")
        answer = self._get(pod, pod.status_port, "status", MAX_STATUS_BYTES)
        if isinstance(answer, str):
            return PodStatus(error=answer)
        code, body = answer
        if code == 401:
            return PodStatus(error="/status refused every accepted token (401)")
        if code != 200:
            return PodStatus(error=f"/status answered HTTP {code}")
        result = parse_status(body)
        if result.error is None and not same_pod(result.pod, pod.name):
            # The port may lead to another pod's sidecar (a hostNetwork pod, a wrong
            # status-port annotation): its keys say nothing about this pod.
            reported = _short(result.pod) or "no pod name"
            return PodStatus(error=f"malformed /status (reports pod {reported}, not this"
                             " pod; set POD_NAME from the downward API in the sidecar)")
        return result

    def verify_counters(self, pod: Pod, key: str) -> VerifyCounters | str | None:
        """The app's counters for ``key``; None when the pod does not declare them."""
        if pod.metrics is None:
            return None
        port, path = pod.metrics
        answer = self._get(pod, port, path, MAX_METRICS_BYTES)
        if isinstance(answer, str):
            return answer
        code, body = answer
        if code != 200:
            return f"verify metrics answered HTTP {code}"
        return parse_verify_counters(body, key)


def parse_verify_counters(body: bytes, key: str) -> VerifyCounters | str:
    """Parse Prometheus text (with prometheus_client's parser) for ``key``'s counters."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "verify metrics are not UTF-8"
    previous = 0.0
    last: float | None = None
    seen = False
    try:  # the parser is a generator: errors surface while iterating
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("name") != key:
                    continue
                if sample.name == "agentos_secrets_verify_total" and (
                    sample.labels.get("result") == "previous"
                ):
                    previous += float(sample.value)
                    seen = True
                elif sample.name == "agentos_secrets_verify_last_previous_timestamp_seconds":
                    last = float(sample.value) if sample.value > 0 else None
                    seen = True
    except (ValueError, TypeError, IndexError, KeyError):
        return "verify metrics are not valid Prometheus text"
    # No series for the key: the app has verified nothing with it yet, so no 'previous'.
    return VerifyCounters(previous if seen else 0.0, last)
