"""One transition = one Secret write: the data change and the new phase together.

Every transition is ONE Secret write (merge patch) that carries the data change and the
new phase annotation together, with a ``metadata.resourceVersion`` precondition. A 409
Conflict is re-read: a write of this run whose answer was lost (a kill, a 5xx after the
change was applied) is recognised by its run id, phase and data; a write by another run
(a takeover by ``--resume``/``--abort``) or by someone else stops the command. With
``--store-cmd`` the write goes through the external store instead, and waits until the
Secret's owner has synced it.

``Transitions`` is the bottom layer of the engine (``engine.Engine`` builds on
``gating.Gating``, which builds on this): the run's identity (run id, owner) and the
reading and writing of the Secret, kept apart from the order of the phases so that the
safety of each single write can be read on its own.
"""

from __future__ import annotations

import base64
import getpass
import os
import socket
import time

from ..secret import fingerprint_bytes
from .commands import run_command
from .discover import SecretObject, external_owner, read_secret, secret_path
from .gates import GateNode
from .kube import KubeError
from .progress import Reporter
from .state import (
    A_KEY,
    A_NEW,
    A_OLD,
    A_OWNER,
    A_PHASE,
    A_RUN,
    A_SINCE,
    A_STARTED,
    A_UPDATED,
    IN_PROGRESS,
    MERGE_PATCH,
    Node,
    RotateError,
    Settings,
    _now,
)
from .status import StatusReader

__all__ = ["Transitions"]


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class Transitions:
    """The run's identity and its Secret reads and writes (see the module docstring)."""

    def __init__(self, nodes: list[Node], settings: Settings, reporter: Reporter) -> None:
        import secrets as _secrets

        self.nodes = nodes
        self.settings = settings
        self.reporter = reporter
        self.run_id = _secrets.token_hex(8)
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        self.owner = f"{user}@{socket.gethostname()} pid {os.getpid()}"[:200]
        self.new: bytes | None = None
        self.fp_new = ""
        for node in nodes:
            node.run_id = self.run_id
            node.reader = StatusReader(node.kube, node.namespace, [])
            node.gate = GateNode(node.label, node.kube, node.namespace, node.name, node.reader,
                                 settings.selector)

    # -- reading and writing the Secret ------------------------------------------------
    def _read(self, node: Node) -> SecretObject:
        try:
            node.secret = read_secret(node.kube, node.namespace, node.name)
        except KubeError as exc:
            if exc.status == 404:
                raise RotateError(f"{node.where}: not found", 2) from None
            raise self._api_failure(node, exc, "reading the Secret") from None
        node.owner = external_owner(node.secret)
        return node.secret

    def _fp(self, value: bytes | None) -> str:
        return fingerprint_bytes(value) if value is not None else ""

    def _annotations(self, node: Node, phase: str) -> dict[str, str | None]:
        assert node.secret is not None
        current = node.secret.annotations
        now = _now()
        ongoing = current.get(A_PHASE) in IN_PROGRESS
        return {
            A_PHASE: phase,
            A_KEY: self.settings.key,
            A_RUN: self.run_id,
            A_OWNER: self.owner,
            A_STARTED: current.get(A_STARTED, now) if ongoing else now,
            # When this phase began: a takeover (same phase) keeps it, so a resumed
            # drain does not start its grace window again.
            A_SINCE: current.get(A_SINCE, now) if current.get(A_PHASE) == phase else now,
            A_UPDATED: now,
            A_NEW: self.fp_new,
            A_OLD: self._fp(node.old) or current.get(A_OLD, ""),
        }

    def _write(self, node: Node, phase: str, data: dict[str, bytes | None]) -> None:
        """One transition: ``data`` changes and the phase, with a resourceVersion check."""
        assert node.secret is not None
        if self.settings.store_cmd and data:
            self._store(node, phase, data)
        annotations = self._annotations(node, phase)
        patch: dict[str, object] = {
            "metadata": {
                "resourceVersion": node.secret.resource_version,
                "annotations": annotations,
            }
        }
        if data and not self.settings.store_cmd:
            patch["data"] = {k: (_b64(v) if v is not None else None) for k, v in data.items()}
        failure: KubeError | None = None
        try:
            answer = node.kube.request(
                "PATCH", secret_path(node.namespace, node.name), body=patch,
                content_type=MERGE_PATCH,
            ).json()
        except KubeError as exc:
            failure = exc
        if failure is None:
            node.secret = _as_secret(answer, node)
            self.reporter.event("write", f"{node.where}: phase {phase} written",
                                context=node.label, phase=phase,
                                resource_version=node.secret.resource_version)
            return
        if failure.status != 409:
            raise self._api_failure(node, failure, f"writing phase {phase}")
        fresh = self._read(node)
        mine = fresh.annotations.get(A_RUN) == self.run_id
        if mine and fresh.annotations.get(A_PHASE) == phase and all(
            fresh.data.get(k) == v for k, v in data.items()
        ):
            self.reporter.event("write", f"{node.where}: phase {phase} written (confirmed"
                                " on re-read)", context=node.label, phase=phase,
                                resource_version=fresh.resource_version)
            return
        other_run = fresh.annotations.get(A_RUN)
        if other_run and other_run != self.run_id:
            raise RotateError(
                f"{node.where}: another rotate holds this Secret now (run {other_run},"
                f" {fresh.annotations.get(A_OWNER, 'unknown owner')}, phase"
                f" {fresh.annotations.get(A_PHASE, '?')}); stopped without writing"
            )
        raise RotateError(
            f"{node.where}: the Secret was changed by someone else during the rotation"
            " (409 Conflict on its resourceVersion); nothing was written. Check who"
            " changed it, then run 'rotate --resume' to continue from the cluster's state"
        )

    def _store(self, node: Node, phase: str, data: dict[str, bytes | None]) -> None:
        """Write through the external store, then wait until its owner syncs the Secret."""
        import json

        assert self.settings.store_cmd is not None
        for key, value in data.items():
            if value is not None and not _is_utf8(value):
                raise RotateError(f"{node.where}: the value for {key} is not UTF-8 text;"
                                  " --store-cmd takes text values", 2)
        document = {
            "version": 1,
            "key": self.settings.key,
            "phase": phase,
            "context": node.label,
            "namespace": node.namespace,
            "secret": node.name,
            "set": {k: v.decode("utf-8") for k, v in data.items() if v is not None},
            "remove": [k for k, v in data.items() if v is None],
        }
        # The store is written before the annotations, so the resourceVersion check of
        # the annotation write comes too late to stop a process whose rotation was taken
        # over: check the holder before the store command and at every re-read.
        known = node.secret
        assert known is not None
        self._still_held(node, known, self._read(node))
        result = run_command(
            self.settings.store_cmd, json.dumps(document).encode(),
            timeout=self.settings.cmd_timeout, env=self._cmd_env(phase),
            redact_values=self._known_values(),
        )
        self.reporter.event("store-cmd", f"{node.where}: --store-cmd for {phase}:"
                            f" {result.summary}", context=node.label, phase=phase,
                            ok=result.ok, summary=result.summary)
        if not result.ok:
            raise RotateError(f"{node.where}: --store-cmd failed ({result.summary});"
                              f" phase {phase} not reached")
        deadline = time.monotonic() + self.settings.gate_timeout
        while True:
            fresh = self._read(node)
            self._still_held(node, known, fresh)
            if all(fresh.data.get(k) == v for k, v in data.items()):
                return
            if time.monotonic() > deadline:
                raise RotateError(
                    f"{node.where}: {node.owner.who if node.owner else 'its owner'} did not"
                    f" sync the store's change into the Secret within"
                    f" {self.settings.gate_timeout:g} s (phase {phase})"
                )
            time.sleep(self.settings.poll)

    def _still_held(self, node: Node, known: SecretObject, fresh: SecretObject) -> None:
        """Stop when the rotation state changed since ``known`` (a takeover, a hand edit)."""
        before, now = known.annotations, fresh.annotations
        if all(before.get(a) == now.get(a) for a in (A_RUN, A_PHASE, A_KEY, A_NEW)):
            return
        other_run = now.get(A_RUN)
        if other_run and other_run != self.run_id:
            raise RotateError(
                f"{node.where}: another rotate holds this Secret now (run {other_run},"
                f" {now.get(A_OWNER, 'unknown owner')}, phase {now.get(A_PHASE, '?')});"
                " stopped without writing"
            )
        raise RotateError(f"{node.where}: the rotation's annotations were changed by"
                          " someone else; stopped without writing. Check who changed"
                          " them, then 'rotate --resume'")

    def _api_failure(self, node: Node, exc: KubeError, doing: str) -> RotateError:
        if exc.status == 403:
            return RotateError(
                f"{node.where}: permission denied {doing}: {exc.message}. The operator needs"
                " the Role in deploy/k8s/rbac-rotate (get/patch on this"
                " Secret, list pods and workloads, get pods/proxy); see docs/rotate.md"
            )
        if exc.status == 401:
            return RotateError(f"{node.where}: the API server refused the credentials"
                               f" ({exc.message}); check the kubeconfig context")
        return RotateError(f"{node.where}: {doing} failed: {exc.message}")

    # -- tokens, commands ---------------------------------------------------------------
    def _known_values(self) -> list[bytes]:
        values = [v for v in (self.new, *(n.old for n in self.nodes)) if v]
        return values

    def _cmd_env(self, phase: str) -> dict[str, str]:
        return {
            "AGENTOS_ROTATE_KEY": self.settings.key,
            "AGENTOS_ROTATE_PHASE": phase,
            "AGENTOS_ROTATE_NEW_FINGERPRINT": self.fp_new,
        }


def _as_secret(answer: object, node: Node) -> SecretObject:
    import binascii

    if not isinstance(answer, dict):
        raise RotateError(f"{node.where}: the API server's answer is not a Secret")
    data: dict[str, bytes] = {}
    for key, value in (answer.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise RotateError(f"{node.where}: data[{key}] is not base64") from None
    return SecretObject(answer, data)
