"""Who may read ``/metrics`` and ``/status``: the bearer-token check of the probe server.

With ``AGENTOS_METRICS_REQUIRE_AUTH`` true (as every AgentOS service in ``prod``) a
request needs ``Authorization: Bearer <AGENTOS_SERVICE_TOKEN>`` or, through
``pods/proxy`` (kube-apiserver strips ``Authorization``), ``X-AgentOS-Token``. The token
is resolved through the :class:`~agentos_secrets.Loader` on every request (so it follows
rotations) and checked with ``Loader.verify`` (current, or previous within its grace
window), in constant time. A setting that is not a boolean requires auth (fail closed).

Kept apart from the routes (``routes``) and the I/O loop (``server``): it is the one
part of the server that touches a secret, and is tested on its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..booleans import BooleanSettingError, read_bool
from ..errors import SecretError

if TYPE_CHECKING:  # pragma: no cover
    from ..loader import Loader

__all__ = ["REQUIRE_AUTH", "TOKEN_NAME", "MetricsAuth"]

logger = logging.getLogger("agentos_secrets.sidecar")

TOKEN_NAME = "AGENTOS_SERVICE_TOKEN"  # noqa: S105 - a variable name, not a token
REQUIRE_AUTH = "AGENTOS_METRICS_REQUIRE_AUTH"


class MetricsAuth:
    """Bearer-token check for ``/metrics`` when ``AGENTOS_METRICS_REQUIRE_AUTH`` is true.

    The setting takes the boolean words of :mod:`agentos_secrets.booleans` (``1``,
    ``true``, ``yes``, ``on`` and their opposites). Any other word requires auth (fail
    closed), logs a warning and sets ``configuration_warnings{reason="bad_boolean"}``:
    ``true`` used to leave ``/metrics`` open because only ``1`` was understood.

    ``secret_dirs`` (the sidecar passes its watched directories) are the Loader's secret
    directories, as the rotation runbook asks of every receiver: a key
    ``AGENTOS_SERVICE_TOKEN_PREVIOUS`` staged in the Secret is then accepted too, so a
    scraper switched to the new token before this pod's volume is updated is not refused.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        loader: Loader | None = None,
        *,
        secret_dirs: Sequence[str] = (),
    ) -> None:
        #: Set when ``AGENTOS_METRICS_REQUIRE_AUTH`` holds a word that is not a boolean:
        #: auth is then required (fail closed), the sidecar warns and counts it.
        self.setting_problem: str | None = None
        try:
            self.required = read_bool(env, REQUIRE_AUTH, default=False)
        except BooleanSettingError as exc:
            self.required = True
            self.setting_problem = str(exc)
            logger.warning("metrics auth is required: %s; fix the setting", exc)
        self._env = env
        self._secret_dirs = tuple(secret_dirs)
        self._loader = loader
        self._loader_lock = threading.Lock()
        self.problem: str | None = None

    def _get_loader(self) -> Loader:
        with self._loader_lock:  # the workers share one Loader (its grace memory)
            if self._loader is None:
                from ..loader import Loader

                self._loader = Loader(env=self._env, secret_dirs=self._secret_dirs)
            return self._loader

    def allowed(self, authorization: str | None, token_header: str | None = None) -> bool:
        """Whether a request may read ``/metrics`` or ``/status``: auth is off, or
        ``X-AgentOS-Token: <token>`` (``token_header``) or ``Authorization: Bearer
        <token>`` holds a token ``Loader.verify`` accepts. When both are sent, the
        ``X-AgentOS-Token`` header is the one checked."""
        if not self.required:
            return True
        token = (token_header or "").strip()
        if not token and authorization:
            scheme, _, bearer = authorization.partition(" ")
            token = bearer.strip() if scheme.lower() == "bearer" else ""
        if not token:
            return False
        loader = self._get_loader()
        try:
            ok = loader.verify(TOKEN_NAME, token) is not None
        except SecretError as exc:
            # Misconfigured (no token, unreadable file): deny, and say why in the logs.
            if self.problem != str(exc):
                self.problem = str(exc)
                logger.warning("metrics auth cannot resolve %s: %s", TOKEN_NAME, exc)
            return False
        self.problem = None
        return ok
