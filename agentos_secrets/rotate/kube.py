"""One Kubernetes API connection: configuration by the official client, pacing by us.

The official ``kubernetes`` package does everything that must not be hand-written:
kubeconfig parsing and merging (``KUBECONFIG`` with several files), contexts, client
certificates, ``certificate-authority-data``, ``exec`` credential plugins and token
refresh, in-cluster service-account configuration. It is imported only here, and only
when ``rotate`` runs.

Requests go out through that client's own connection pool with its authentication
applied (``ApiClient.param_serialize``), but this module sends them, so that every one
of them is:

* paced by a client-side token bucket (QPS 5, burst 10 by default: client-go's
  defaults), shared by all threads of the command, so that a rotation over a thousand
  pods cannot flood the API server;
* retried, bounded, on 429 (honouring ``Retry-After``, which also pauses the whole bucket:
  the server said the client is too fast) and on 5xx and connection errors, with
  exponential backoff and jitter;
* bounded in time (connect and read timeouts plus an overall deadline per response) and
  in size (a response larger than the cap is cut off and refused), because ``pods/proxy``
  hands us bytes from the pod network;
* answered as JSON dictionaries, not the client's generated models: the command reads a
  few fields of a few kinds, and models would drop fields and cost time per pod.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "INSTALL_HINT",
    "Kube",
    "KubeError",
    "KubeUnavailable",
    "RateLimiter",
    "connect",
]

INSTALL_HINT = (
    "the 'kubernetes' package is not installed; install it with:"
    " pip install 'agentos-secrets[rotate]'"
)
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_RETRY_AFTER = 30.0
_SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class KubeUnavailable(Exception):
    """The client library is missing or the configuration cannot be loaded (exit 2)."""


class KubeError(Exception):
    """A request failed: the API's ``Status`` (reason, message) or a transport error."""

    def __init__(
        self, message: str, *, status: int | None = None, reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)  # a Secret's GET answer holds its data

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            pass
        raise KubeError("the API server answered with something that is not JSON",
                        status=self.status)


class RateLimiter:
    """A token bucket: ``qps`` tokens a second, at most ``burst`` saved; thread-safe.

    ``pause(seconds)`` makes every caller wait at least that long (a 429's Retry-After).
    """

    def __init__(self, qps: float, burst: int, *, clock: Any = time.monotonic,
                 sleep: Any = time.sleep) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        self.qps = float(qps)
        self.burst = int(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def acquire(self) -> None:
        """Take a token, sleeping (once) until it is due.

        A reservation, as golang.org/x/time/rate does it: the bucket may go below zero,
        and each caller sleeps exactly until its own token has refilled, so waiting
        threads neither spin nor race for the lock.
        """
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            wait = max(-self._tokens / self.qps, self._paused_until - now)
        if wait > 0:
            self._sleep(wait)


def _status_message(body: bytes, status: int) -> tuple[str, str]:
    """(reason, message) of a ``Status`` body, else a generic text; never the raw body."""
    try:
        document = json.loads(body[:65536])
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict) and document.get("kind") == "Status":
        message = document.get("message")
        reason = document.get("reason")
        return (
            reason if isinstance(reason, str) else "",
            message[:500] if isinstance(message, str) else f"HTTP {status}",
        )
    return "", f"HTTP {status}"


class Kube:
    """Requests to one API server (one kubeconfig context), paced and retried."""

    def __init__(
        self,
        api_client: Any,
        *,
        name: str,
        namespace: str,
        limiter: RateLimiter,
        max_attempts: int = 5,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.api_client = api_client
        self.name = name
        self.namespace = namespace
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.requests_sent = 0
        self.retries = 0
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self.api_client.close()

    # -- requests -------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: tuple[float, float] | None = None,
        attempts: int | None = None,
        raise_for_status: bool = True,
    ) -> Response:
        """Send one request (retried on 429/5xx/transport errors); return the response.

        A non-2xx answer raises :class:`KubeError` with the server's Status message,
        unless ``raise_for_status`` is False (the pod proxy passes the pod's answers on).
        """
        tries = attempts or self.max_attempts
        delay = 0.2
        for attempt in range(1, tries + 1):
            error: KubeError | None = None
            response: Response | None = None
            try:
                response = self._send(method, path, query, body, content_type, headers,
                                      max_bytes, timeout or self.timeout)
            except KubeError as exc:
                error = exc
            if response is not None:
                if response.status < 300:
                    return response
                reason, message = _status_message(response.body, response.status)
                retry_after = _retry_after(response.headers)
                error = KubeError(message, status=response.status, reason=reason,
                                  retry_after=retry_after)
                if response.status == 429:
                    self.limiter.pause(retry_after if retry_after is not None else delay)
                if not raise_for_status and not _from_api_server(response):
                    return response
            assert error is not None
            retryable = error.status is None or error.status in _RETRY_STATUSES
            if not retryable or attempt == tries:
                raise error
            with self._count_lock:
                self.retries += 1
            wait = error.retry_after if error.retry_after is not None else delay
            time.sleep(min(wait, _MAX_RETRY_AFTER) * (1 + random.random() * 0.2))
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _send(
        self, method: str, path: str, query: list[tuple[str, str]] | None, body: Any,
        content_type: str | None, headers: Mapping[str, str] | None, max_bytes: int,
        timeout: tuple[float, float],
    ) -> Response:
        import urllib3

        header_params = {"Accept": "application/json"}
        if content_type:
            header_params["Content-Type"] = content_type
        header_params.update(headers or {})
        method, url, sent_headers, _, _ = self.api_client.param_serialize(
            method, path, query_params=list(query or []), header_params=header_params,
            auth_settings=["BearerToken"],
        )
        payload = json.dumps(body).encode() if body is not None else None
        self.limiter.acquire()
        with self._count_lock:
            self.requests_sent += 1
        deadline = time.monotonic() + timeout[0] + timeout[1]
        try:
            raw = self.api_client.rest_client.pool_manager.request(
                method, url, body=payload, headers=sent_headers,
                timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                preload_content=False, retries=False, redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            problem = _transport_problem(exc)
        else:
            try:
                return Response(raw.status, dict(raw.headers.items()),
                                _read_bounded(raw, max_bytes, deadline))
            except urllib3.exceptions.HTTPError as exc:
                problem = _transport_problem(exc)
            finally:
                raw.release_conn()
        # Raised here, not inside the except block: transport errors carry the request.
        raise KubeError(f"cannot reach the API server: {problem}")

    def get(self, path: str, query: list[tuple[str, str]] | None = None) -> Any:
        return self.request("GET", path, query=query).json()

    def list_all(
        self, path: str, query: list[tuple[str, str]] | None = None, *, page: int = 500,
        max_items: int = 100_000,
    ) -> list[dict[str, Any]]:
        """Every item of a list, fetched in pages of ``page`` (``limit``/``continue``)."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            params = [*(query or []), ("limit", str(page))]
            if token:
                params.append(("continue", token))
            document = self.get(path, params)
            if not isinstance(document, dict) or not isinstance(document.get("items"), list):
                raise KubeError(f"{path}: the API server's list has no items")
            items.extend(i for i in document["items"] if isinstance(i, dict))
            if len(items) > max_items:
                raise KubeError(f"{path}: more than {max_items} items")
            meta = document.get("metadata") or {}
            token = meta.get("continue") if isinstance(meta, dict) else None
            if not token or not isinstance(token, str):
                return items


def _from_api_server(response: Response) -> bool:
    """Whether an error came from the API server itself (a Status) or the pod behind it."""
    reason, _ = _status_message(response.body, response.status)
    return bool(reason) or response.status in (429,)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, min(float(value), _MAX_RETRY_AFTER))
            except ValueError:
                return None
    return None


def _transport_problem(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return type(reason or exc).__name__


def _read_bounded(raw: Any, max_bytes: int, deadline: float) -> bytes:
    length = raw.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raw.close()
        raise KubeError(f"response of {length} bytes is over the limit of {max_bytes}")
    chunks: list[bytes] = []
    total = 0
    # read1, not read: urllib3 2's read(amt) blocks until amt bytes arrive, so a sender
    # trickling a byte within each read timeout would hold it far past the deadline.
    read = getattr(raw, "read1", raw.read)
    while True:
        chunk = read(65536)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raw.close()
            raise KubeError(f"response is over the limit of {max_bytes} bytes")
        if time.monotonic() > deadline:
            raw.close()
            raise KubeError("response took longer than its deadline")
        chunks.append(chunk)


MAX_KUBECONFIG_BYTES = 16 * 1024 * 1024


def _kubeconfig_problem(path: str) -> str | None:
    """Why a kubeconfig file cannot be read safely (a FIFO blocks, a device never ends)."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None  # the client skips a missing file of KUBECONFIG's list
    except OSError as exc:
        return f"kubeconfig {path}: cannot be read ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"kubeconfig {path}: not a regular file"
    if st.st_size > MAX_KUBECONFIG_BYTES:
        return (f"kubeconfig {path}: {st.st_size} bytes, more than the limit of"
                f" {MAX_KUBECONFIG_BYTES}")
    return None


def connect(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    limiter: RateLimiter,
    pool_size: int = 10,
) -> Kube:
    """A :class:`Kube` for ``context`` of ``kubeconfig`` (or ``KUBECONFIG``, ``~/.kube/config``),
    or the in-cluster service account when there is no kubeconfig and no context."""
    try:
        import yaml
        from kubernetes import client, config
    except ImportError:
        raise KubeUnavailable(INSTALL_HINT) from None
    configuration = type.__call__(client.Configuration)
    configuration.connection_pool_maxsize = pool_size
    configuration.retries = False
    problem: str | None = None
    chosen_namespace = namespace
    label = context or "current-context"
    files = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    for path in files.split(os.pathsep):
        problem = _kubeconfig_problem(path) if path else None
        if problem:
            raise KubeUnavailable(problem)
    use_kubeconfig = bool(kubeconfig or context or any(
        os.path.exists(p) for p in files.split(os.pathsep) if p
    ))
    try:
        if use_kubeconfig:
            contexts, current = config.list_kube_config_contexts(config_file=files)
            chosen = current
            if context is not None:
                chosen = next((c for c in contexts if c.get("name") == context), None)
                if chosen is None:
                    problem = f"--context {context}: no such context in the kubeconfig"
            if chosen is not None:
                label = chosen.get("name", label)
                chosen_namespace = chosen_namespace or (chosen.get("context") or {}).get(
                    "namespace"
                )
                config.load_kube_config(
                    config_file=files, context=label, client_configuration=configuration,
                    persist_config=False,
                )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
            label = "in-cluster"
            if chosen_namespace is None and os.path.exists(_SA_NAMESPACE):
                with open(_SA_NAMESPACE, encoding="utf-8") as handle:
                    chosen_namespace = handle.read(256).strip() or None
        else:
            problem = ("no kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config) and not"
                       " running in a cluster")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = f"the kubeconfig {files} is not valid YAML{where}"
    except (config.ConfigException, OSError, ValueError, TypeError, KeyError,
            AttributeError) as exc:
        problem = f"cannot load the Kubernetes configuration: {exc}"
    if problem is not None:
        raise KubeUnavailable(problem)
    api_client = client.ApiClient(configuration)
    api_client.user_agent = "agentos-secrets-rotate"
    return Kube(api_client, name=label, namespace=chosen_namespace or "default",
                limiter=limiter)
