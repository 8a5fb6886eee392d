"""The ``http`` action: one request to the app's reload endpoint per change.

* One ``httpx.Client`` kept open for the sidecar's life: a new client per request costs
  about 21 ms here against 0.8 ms for a kept-open one, and detection-to-reload latency
  is what the benchmark measures.
* Explicit timeouts (connect, read, write, pool = ``--timeout``): configmap-reload's
  client had none, and a hung endpoint hung the reloader for good.
* Headers from files (``--header-file NAME=PATH``) are re-read on *every* attempt: a
  bearer token mounted from a Secret rotates too.
* An optional signature (``--hmac-key-file``): see :mod:`agentos_secrets.webhook`; the
  key file is re-read on every attempt as well.
* Failures map to the loop's contract: connection errors, timeouts, 429 and 5xx are
  retryable; any other unexpected status is a configuration error.

Messages name the method, the URL with credentials redacted, and the status; never a
header value or a key.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from typing import TYPE_CHECKING

from ...errors import SecretError
from ...files import read_secret_file
from ...webhook import SIGNATURE_HEADER, sign
from ..logs import redact_url
from .base import ActionError
from .bounded import IDENTITY, read_body

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from ..config import StatusRanges

__all__ = ["HttpAction"]

USER_AGENT = "agentos-secrets-sidecar/0.1.0"
_MAX_BODY = 64 * 1024  # of a reload endpoint's answer, read and dropped
_HEADER_VALUE_RE = re.compile(r"[\t\x20-\x7e]*")


def _tls_context(url: str) -> ssl.SSLContext | bool:
    """The default verifying context for https; for plain http one without CA certificates.

    httpx builds its TLS context when the client is created, loading the whole CA bundle
    (about 1.5 MiB of resident memory) even for a loopback ``http://`` URL. A context
    with no CA certificates still verifies (``CERT_REQUIRED``), so it fails closed if it
    were ever used; redirects are not followed.
    """
    if url.lower().startswith("https://"):
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class HttpAction:
    """POST (by default) to ``url``; success is a status in ``expect_status``."""

    kind = "http"

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        expect_status: StatusRanges | None = None,
        header_files: tuple[tuple[str, str], ...] = (),
        hmac_key_file: str | None = None,
        timeout: float = 5.0,
        send_fingerprint: bool = False,
    ) -> None:
        import httpx

        from ..config import StatusRanges

        self.url = url
        self.method = method
        self.expect_status = expect_status or StatusRanges("200-299")
        self.header_files = header_files
        self.hmac_key_file = hmac_key_file
        self.timeout = timeout
        #: The loop computes the (slow) fingerprint before ``apply`` only when needed.
        self.uses_fingerprint = send_fingerprint
        self._where = f"{method} {redact_url(url)}"
        self._aborted = False
        self._client: httpx.Client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            verify=_tls_context(url),
        )

    def __repr__(self) -> str:
        return f"HttpAction({self._where!r})"

    def ready(self) -> str | None:
        # Never probe the app here: at start-up it may not run yet, and a sidecar that
        # waits for it deadlocks a native sidecar (kiwigrid k8s-sidecar issue 432).
        return None

    def _headers(self, body: bytes) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        for name, path in self.header_files:
            try:
                value, _ = read_secret_file(path, variable=f"--header-file {name}")
            except SecretError as exc:
                raise ActionError(f"header {name}: {exc}", retryable=True) from None
            text = value.decode("utf-8")
            if not _HEADER_VALUE_RE.fullmatch(text):
                # A line break (a multi-line file), a control or a non-ASCII character:
                # httpx would refuse it with an error quoting the whole value (h11's
                # "Illegal header value b'...'", a UnicodeEncodeError's .object), and
                # httpcore logs that error at DEBUG.
                raise ActionError(
                    f"header {name}: the file holds a line break, a control or a non-ASCII"
                    " character (not sent)",
                    retryable=True,
                )
            headers[name] = text
        if self.hmac_key_file:
            try:
                key, _ = read_secret_file(self.hmac_key_file, variable="--hmac-key-file")
            except SecretError as exc:
                raise ActionError(f"signature key: {exc}", retryable=True) from None
            headers[SIGNATURE_HEADER] = sign(key, body, timestamp=int(time.time()))
        return headers

    def abort(self, grace: float) -> None:
        """Shutting down: start no other request (one in flight ends by its timeout, or
        with the process when the shutdown budget runs out)."""
        self._aborted = True

    def apply(self, fingerprint: str) -> None:
        import httpx

        if self._aborted:
            raise ActionError(f"{self._where}: not sent: shutting down", retryable=True)
        payload: dict[str, str] = {"event": "secrets-rotated"}
        if fingerprint:
            payload["fingerprint"] = fingerprint
        body = json.dumps(payload).encode()
        headers = self._headers(body)
        headers.update(IDENTITY)
        failure: str | None = None
        try:
            with self._client.stream(
                self.method, self.url, content=body, headers=headers
            ) as response:
                status = response.status_code
                # The body is not used: read a little (so the connection can be kept),
                # never an endless or dripped one (closing drops the connection).
                read_body(response, limit=_MAX_BODY, seconds=self.timeout)
        except httpx.TimeoutException:
            failure = f"timed out after {self.timeout:g}s"
        except httpx.HTTPError as exc:
            failure = type(exc).__name__
        if failure is not None:
            # Raised outside the except block: httpx's error may quote a header value
            # (h11's "Illegal header value b'...'") and would travel as __context__.
            raise ActionError(f"{self._where}: {failure}", retryable=True)
        if status in self.expect_status:
            return
        retryable = status == 429 or status >= 500
        raise ActionError(
            f"{self._where}: status {status}"
            + ("" if retryable else f" (expected {self.expect_status.spec}; check the config)"),
            retryable=retryable,
            status=status,
        )

    def close(self) -> None:
        self._client.close()
