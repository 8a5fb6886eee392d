"""The ``rollout`` action's transport: one kept-open HTTPS client to the API server.

One ``httpx.Client`` with explicit timeouts and the cluster CA (read bounded, so a FIFO
where the CA belongs fails at once), built on first use under a lock (``ready()`` runs on
the server's threads, ``apply()`` on the loop's). The service account token is re-read
from ``--token-file`` on every attempt (projected tokens rotate about hourly). Each
answer is bounded in size and time; a failure is an :class:`~.base.ActionError` that is
retryable (timeouts, 408/409/429, 5xx, unreachable) or a configuration error (other
statuses, with a hint; an untrusted certificate), raised outside the ``except`` block so
httpx's error (which may quote the token header) never travels as ``__context__``.

:class:`ApiTransport` is the mixin of :class:`~.rollout.RolloutAction` that holds this;
it works on the action's attributes (``api_server``, ``ca_file``, ``token_file``,
``timeout``, ``namespace``, ``deployment``, ``path``). Kept apart so the action reads as
its GET-compare-PATCH logic alone.
"""

from __future__ import annotations

import json
import re
import ssl
from typing import TYPE_CHECKING, Any

from ...errors import SecretError, SecretValueError
from ...files import read_bounded, read_secret_file, shown_path
from .base import ActionError
from .bounded import IDENTITY, read_body

if TYPE_CHECKING:  # httpx is imported lazily: it is only needed once the action runs.
    import httpx

__all__ = ["PATCH_CONTENT_TYPE", "ApiTransport"]

PATCH_CONTENT_TYPE = "application/strategic-merge-patch+json"

_MAX_TOKEN_BYTES = 16 * 1024
_MAX_CA_BYTES = 1024 * 1024
_MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a Deployment object is a few KiB
_REASON_RE = re.compile(r"[A-Za-z]{1,64}")
#: A bearer token as the Authorization header carries it (a JWT: printable ASCII).
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")

# Statuses that say "try again soon"; every other non-2xx is a configuration error.
_RETRYABLE_STATUSES = frozenset({408, 409, 429})


def _untrusted_certificate(exc: BaseException) -> bool:
    """True when a transport error was caused by certificate verification (a config error)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class ApiTransport:
    """Token, client and bounded requests to the API server (mixin of ``RolloutAction``)."""

    def _read_token(self) -> str:
        # The kubelet owns the token's mode (fsGroup may add group bits), hence no
        # permission check; the content is still size-capped and validated.
        data, _ = read_secret_file(
            self.token_file,
            variable="--token-file",
            max_bytes=_MAX_TOKEN_BYTES,
            check_permissions=False,
        )
        token = data.decode("utf-8")
        if not _TOKEN_RE.fullmatch(token):
            # httpx would refuse the header with an error quoting the whole token.
            raise SecretValueError(
                "--token-file: the token holds a space, a line break, a control or a"
                " non-ASCII character",
                variable="--token-file",
            )
        return token

    # -- transport ----------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        """The kept-open client, built on first use (the CA may appear after start-up)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> httpx.Client:
        import httpx

        # Read with the bounded reader, not by OpenSSL's own open(): a FIFO or a device
        # put where the CA belongs must fail at once, not hang the loop or fill memory.
        try:
            pem = read_bounded(self.ca_file, what="--ca-file", max_bytes=_MAX_CA_BYTES)
        except SecretError as exc:
            raise ActionError(f"cannot load the CA bundle: {exc}", retryable=False) from None
        try:
            context = ssl.create_default_context(
                cadata=pem.decode("ascii", "replace")
            )
        except (ValueError, ssl.SSLError) as exc:
            raise ActionError(
                f"--ca-file ({shown_path(self.ca_file)}): cannot load the CA bundle"
                f" ({type(exc).__name__})",
                retryable=False,
            ) from None
        return httpx.Client(
            base_url=self.api_server,
            verify=context,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "agentos-secrets-sidecar"},
        )

    def _request(
        self, method: str, token: str, *, body: bytes | None = None
    ) -> dict[str, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = PATCH_CONTENT_TYPE
        what = f"{method} deployment {self.namespace}/{self.deployment}"
        headers.update(IDENTITY)
        try:
            with self._http().stream(
                method, self.path, content=body, headers=headers
            ) as response:
                status = response.status_code
                raw = read_body(response, limit=_MAX_RESPONSE_BYTES, seconds=self.timeout)
        except httpx.TimeoutException as exc:
            failure = ActionError(
                f"{what}: timed out after {self.timeout:g} s ({type(exc).__name__})",
                retryable=True,
            )
        except httpx.TransportError as exc:
            if _untrusted_certificate(exc):
                failure = ActionError(
                    f"{what}: the API server's certificate is not trusted by --ca-file"
                    f" ({shown_path(self.ca_file)})",
                    retryable=False,
                )
            else:
                failure = ActionError(
                    f"{what}: cannot reach the API server ({type(exc).__name__})",
                    retryable=True,
                )
        else:
            failure = None
        if failure is not None:
            # Raised outside the except block: httpx's error may quote a header value
            # (the token) and would travel as __context__.
            raise failure
        if raw is None:
            raise ActionError(
                f"{what}: the API server's answer is larger than {_MAX_RESPONSE_BYTES} bytes"
                f" or slower than {self.timeout:g} s",
                retryable=True,
            )
        if not 200 <= status < 300:
            reason = ""
            try:
                payload = json.loads(raw)
                candidate = payload.get("reason") if isinstance(payload, dict) else None
                if isinstance(candidate, str) and _REASON_RE.fullmatch(candidate):
                    reason = f" {candidate}"
            except ValueError:
                pass
            retryable = status in _RETRYABLE_STATUSES or status >= 500
            hint = "" if retryable else _HINTS.get(status, " (a configuration error)")
            raise ActionError(
                f"{what}: the API server answered {status}{reason}{hint}",
                retryable=retryable,
                status=status,
            )
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ActionError(
                f"{what}: the API server answered {status} without a JSON object",
                retryable=True,
                status=status,
            )
        return document

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None


_HINTS = {
    400: " (the API server refused the patch)",
    401: " (the service account token was refused; check --token-file)",
    403: (
        " (RBAC: the service account needs get and patch on deployments in group apps;"
        " see Role agentos-secrets-sidecar)"
    ),
    404: " (no such Deployment: check --deployment and --namespace)",
    415: " (the API server does not accept this patch type)",
    422: " (the patch was invalid: check --annotation)",
}
