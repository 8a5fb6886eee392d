"""The rotation's state as kept in the Secret, and the objects every phase works on.

State lives in the cluster, on the Secret itself, as annotations (prefix
``rotate.agentos.dev/``): the phase, the key, the old and new fingerprints, start and
last-transition times, the owner (user, host, pid) and a random run id. Never a value.
This module names those annotations and the phases (with their forward order), and holds
``Node`` (one Secret and what is known of it, whose ``phase`` reads the annotation),
``Settings`` (the command's knobs) and ``RotateError`` (how the command stops). It is
separate so the machinery that writes transitions, the gates and the sequences all read
one vocabulary without importing each other; it imports nothing of the engine.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from .discover import ANNOTATION_PREFIX, ExternalOwner, SecretObject
from .gates import GateNode
from .kube import Kube
from .status import StatusReader

__all__ = [
    "ABORTED",
    "A_KEY",
    "A_NEW",
    "A_OLD",
    "A_OWNER",
    "A_PHASE",
    "A_RUN",
    "A_SINCE",
    "A_STARTED",
    "A_UPDATED",
    "DONE",
    "DROPPED",
    "IN_PROGRESS",
    "MERGE_PATCH",
    "ROLLING_BACK",
    "STAGED",
    "SWITCHED",
    "Node",
    "RotateError",
    "Settings",
]

A_PHASE = ANNOTATION_PREFIX + "phase"
A_KEY = ANNOTATION_PREFIX + "key"
A_RUN = ANNOTATION_PREFIX + "run"
A_OWNER = ANNOTATION_PREFIX + "owner"
A_STARTED = ANNOTATION_PREFIX + "started"
A_UPDATED = ANNOTATION_PREFIX + "updated"
A_NEW = ANNOTATION_PREFIX + "new-fingerprint"
A_OLD = ANNOTATION_PREFIX + "old-fingerprint"
A_SINCE = ANNOTATION_PREFIX + "phase-since"

STAGED, SWITCHED, DROPPED, DONE = "staged", "switched", "dropped", "done"
ROLLING_BACK, ABORTED = "rolling-back", "aborted"
IN_PROGRESS = (STAGED, SWITCHED, DROPPED, ROLLING_BACK)
_ORDER = {None: 0, STAGED: 1, SWITCHED: 2, DROPPED: 3, DONE: 4}
MERGE_PATCH = "application/merge-patch+json"


class RotateError(Exception):
    """Stops the command: ``code`` 1 (failed/aborted) or 2 (refused, bad usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Settings:
    key: str
    gate_timeout: float = 180.0
    poll: float = 2.0
    grace: float = 600.0
    quiet: float = 60.0
    drain_timeout: float = 1800.0
    test_cmd: list[str] | None = None
    revoke_cmd: list[str] | None = None
    store_cmd: list[str] | None = None
    cmd_timeout: float = 120.0
    refresh_interval: float = 0.0
    status_token_key: str = "AGENTOS_SERVICE_TOKEN"  # noqa: S105 (a key name)
    workers: int = 8
    selector: str | None = None

    @property
    def previous(self) -> str:
        return self.key + "_PREVIOUS"


@dataclass
class Node:
    """One Secret (one per cluster context) and what is known of it."""

    label: str
    kube: Kube
    namespace: str
    name: str
    # Never in a repr: the Secret's data and the old value are secrets.
    secret: SecretObject | None = field(default=None, repr=False)
    old: bytes | None = field(default=None, repr=False)
    gate: GateNode | None = None
    owner: ExternalOwner | None = None
    reader: StatusReader | None = field(default=None, repr=False)
    run_id: str = ""

    @property
    def where(self) -> str:
        return f"{self.label}: Secret {self.namespace}/{self.name}"

    @property
    def raw_phase(self) -> str | None:
        assert self.secret is not None
        phase = self.secret.annotations.get(A_PHASE)
        return phase if phase in (*IN_PROGRESS, DONE, ABORTED) else None

    @property
    def phase(self) -> str | None:
        """This run's phase here: a finished phase of an earlier run counts as none."""
        phase = self.raw_phase
        if phase in (DONE, ABORTED) and self.secret.annotations.get(A_RUN) != self.run_id:
            return None
        return phase


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC
        ).timestamp()
    except ValueError:
        return None
