"""The ``rollout`` action: a rolling restart of the owning Deployment, once per content.

It sets one annotation on the Deployment's pod template
(``spec.template.metadata.annotations``) to the *fingerprint of the watched content*,
through the Kubernetes API with the pod's service account token and CA. A change of the
pod template is what makes the Deployment controller roll out new pods.

Why a fingerprint and never a time: every replica's sidecar computes the same value for
the same content, so

* a rotation seen by three replicas causes one rollout (the first PATCH changes the
  template; the others find the value already there, or patch it to the same value,
  which changes nothing);
* a sidecar restart causes none (Stakater Reloader's time stamps restarted workloads en
  masse whenever it restarted, issues 1089 and 166);
* a pod started *by* the rollout sees its own fingerprint already there and does nothing.

So :meth:`RolloutAction.apply` first GETs the Deployment and only PATCHes when the
annotation differs. The fingerprint is the slow, salted ``fp1:`` value of
:mod:`agentos_secrets.secret`, safe to show to anyone who can read the Deployment (an
unsalted SHA-1 there could be brute-forced: Reloader issue 594).

Transport: one kept-open ``httpx.Client`` with explicit timeouts and the cluster CA. The
token is re-read from ``--token-file`` on every attempt because projected service account
tokens rotate (about hourly). No retry happens here: the sidecar's loop owns backoff, and
:class:`~agentos_secrets.sidecar.actions.base.ActionError` says whether to retry soon
(connection errors, timeouts, 409, 429, 5xx) or treat the failure as configuration (401,
403, 404, 422 and other 4xx: RBAC, wrong name, a webhook refusing the patch).

Modules: this one is the action (configuration, readiness, GET-compare-PATCH);
``rollout_api`` holds its transport (client, token, bounded requests) and
``rollout_names`` the Kubernetes name checks of its flags. Every name is importable from
here as before.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ...errors import SecretError
from ...files import read_secret_file, shown_path
from .base import ActionError
from .rollout_api import PATCH_CONTENT_TYPE, ApiTransport
from .rollout_names import (
    _DNS_LABEL_RE,
    RolloutConfigError,
    _check_annotation,
    _check_label,
    _check_subdomain,
)

if TYPE_CHECKING:  # httpx is imported lazily: it is only needed once the action runs.
    import httpx

__all__ = [
    "DEFAULT_ANNOTATION",
    "DEFAULT_API_SERVER",
    "DEFAULT_CA_FILE",
    "DEFAULT_TOKEN_FILE",
    "PATCH_CONTENT_TYPE",
    "RolloutAction",
    "RolloutConfigError",
    "fingerprint_patch",
]

logger = logging.getLogger("agentos_secrets.sidecar.rollout")

DEFAULT_ANNOTATION = "secrets.agentos.io/fingerprint"
DEFAULT_API_SERVER = "https://kubernetes.default.svc"
_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TOKEN_FILE = f"{_SA_DIR}/token"
DEFAULT_CA_FILE = f"{_SA_DIR}/ca.crt"


def fingerprint_patch(annotation: str, fingerprint: str) -> dict[str, Any]:
    """The strategic merge patch that sets only ``annotation`` on the pod template.

    Maps merge key by key under a strategic merge patch, so every other annotation, label
    and field of the Deployment is left as it is.
    """
    return {"spec": {"template": {"metadata": {"annotations": {annotation: fingerprint}}}}}


def _template_annotation(deployment: Any, annotation: str) -> str | None:
    """``spec.template.metadata.annotations[annotation]`` of a Deployment, if any."""
    node: Any = deployment
    for key in ("spec", "template", "metadata", "annotations"):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    if not isinstance(node, dict):
        return None
    value = node.get(annotation)
    return value if isinstance(value, str) else None


class RolloutAction(ApiTransport):
    """Patch the owning Deployment's pod-template annotation to the content fingerprint.

    :param deployment: the Deployment's name (in manifests from the pod's ``app`` label).
    :param namespace: its namespace; when None, read from the ``namespace`` file that
        Kubernetes mounts beside the service account token.
    :param annotation: the pod-template annotation key.
    :param api_server: the API server's base URL.
    :param token_file: the service account token, re-read on every attempt.
    :param ca_file: the CA bundle that signed the API server's certificate.
    :param timeout: seconds for connect, read, write and pool waits of each request.
    """

    kind = "rollout"

    def __init__(
        self,
        *,
        deployment: str | None,
        namespace: str | None = None,
        annotation: str = DEFAULT_ANNOTATION,
        api_server: str = DEFAULT_API_SERVER,
        token_file: str = DEFAULT_TOKEN_FILE,
        ca_file: str = DEFAULT_CA_FILE,
        timeout: float = 5.0,
    ) -> None:
        deployment = (deployment or "").strip() or None
        namespace = (namespace or "").strip() or None
        if deployment is not None:
            _check_subdomain("--deployment", deployment)
        if namespace is not None:
            _check_label("--namespace", namespace)
        _check_annotation(annotation)
        if not api_server.startswith("https://"):
            raise RolloutConfigError(
                "--api-server must be an https:// URL (the token is a credential)"
            )
        if "@" in api_server.split("://", 1)[1].split("/", 1)[0]:
            raise RolloutConfigError(
                "--api-server must not carry credentials; the token comes from --token-file"
            )
        if timeout <= 0:
            raise RolloutConfigError("--timeout must be positive")
        self.deployment = deployment
        self._namespace = namespace
        self.annotation = annotation
        self.api_server = api_server.rstrip("/")
        self.token_file = token_file
        self.ca_file = ca_file
        self.timeout = timeout
        self._client: httpx.Client | None = None
        # ready() runs on the server's threads (every probe and scrape), apply() on the
        # loop's: the lazily built client must be built once, not once per thread.
        self._client_lock = threading.Lock()
        self._aborted = False

    def __repr__(self) -> str:
        return (
            f"RolloutAction(deployment={self.deployment!r}, namespace={self._namespace!r},"
            f" annotation={self.annotation!r}, api_server={self.api_server!r})"
        )

    # -- configuration ------------------------------------------------------------------
    @property
    def namespace(self) -> str | None:
        """The namespace: the flag, else the service account's ``namespace`` file."""
        if self._namespace is None:
            path = os.path.join(os.path.dirname(self.token_file), "namespace")
            try:
                data, _ = read_secret_file(path, variable="namespace", check_permissions=False)
            except SecretError:
                return None
            candidate = data.decode("utf-8")
            if len(candidate) <= 63 and _DNS_LABEL_RE.fullmatch(candidate):
                self._namespace = candidate
        return self._namespace

    @property
    def path(self) -> str:
        """The Deployment's API path."""
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.deployment}"

    def ready(self) -> str | None:
        if self.deployment is None:
            return "--deployment is not set (AGENTOS_SIDECAR_DEPLOYMENT)"
        if self.namespace is None:
            return (
                "--namespace is not set (AGENTOS_SIDECAR_NAMESPACE) and no service account"
                f" namespace file is readable beside {shown_path(self.token_file)}"
            )
        try:
            self._read_token()
        except SecretError as exc:
            return f"service account token not readable: {exc}"
        try:
            self._http()
        except ActionError as exc:
            return str(exc)
        return None

    # -- the action ---------------------------------------------------------------------
    def abort(self, grace: float) -> None:
        """Shutting down: send no other request (one in flight ends by its timeout, or
        with the process when the shutdown budget runs out)."""
        self._aborted = True

    def apply(self, fingerprint: str) -> None:
        """Make the Deployment's pod template carry ``fingerprint``; patch only if needed."""
        if self._aborted:
            raise ActionError("rollout: not sent: shutting down", retryable=True)
        if self.deployment is None or self.namespace is None:
            raise ActionError(
                "rollout: --deployment and --namespace must both be known", retryable=False
            )
        try:
            token = self._read_token()
        except SecretError as exc:
            raise ActionError(f"rollout: {exc}", retryable=False) from None
        started = time.monotonic()
        current = _template_annotation(self._request("GET", token), self.annotation)
        if current == fingerprint:
            logger.info(
                "rollout: deployment %s/%s already carries %s=%s; nothing to do",
                self.namespace,
                self.deployment,
                self.annotation,
                fingerprint,
            )
            return
        body = json.dumps(fingerprint_patch(self.annotation, fingerprint)).encode("utf-8")
        patched = self._request("PATCH", token, body=body)
        if _template_annotation(patched, self.annotation) != fingerprint:
            raise ActionError(
                f"PATCH deployment {self.namespace}/{self.deployment}: accepted, but the"
                f" pod template does not carry {self.annotation} (an admission webhook may"
                " strip it)",
                retryable=False,
            )
        logger.info(
            "rollout: patched deployment %s/%s %s=%s (was %s) in %.0f ms",
            self.namespace,
            self.deployment,
            self.annotation,
            fingerprint,
            current or "unset",
            (time.monotonic() - started) * 1000,
        )
