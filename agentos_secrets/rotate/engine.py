"""The rotation state machine: stage, gate, test, switch, gate, drain, drop, gate, revoke.

State lives in the cluster, on the Secret itself, as annotations (prefix
``rotate.agentos.dev/``): the phase, the key, the old and new fingerprints, start and
last-transition times, the owner (user, host, pid) and a random run id. Never a value.

Every transition is ONE Secret write (merge patch) that carries the data change and the
new phase annotation together, with a ``metadata.resourceVersion`` precondition. So:

* the cluster is always in a state that one of the phases describes; a kill between any
  two steps leaves a phase that ``--resume`` continues from (the new value is in the
  Secret from the stage write on: under ``NAME_PREVIOUS`` while staged, under ``NAME``
  once switched), and gates are reads that are simply run again;
* two rotations cannot interleave: the second one sees the phase and refuses, and if
  both read the Secret before either wrote, one write fails with 409 Conflict and the
  loser re-reads and stops. ``--resume``/``--abort`` take over with a write of their own
  run id, so a still-running first process stops at its next write;
* a write whose answer was lost (a kill, a 5xx after the change was applied) is
  recognised on re-read by its run id, phase and data.

Phases (annotation ``rotate.agentos.dev/phase``) and what ``--abort`` does from each:

==============  ==================================  =========================================
phase           Secret data                         --abort
==============  ==================================  =========================================
staged          NAME=old, NAME_PREVIOUS=new         drop NAME_PREVIOUS -> aborted (old only)
switched        NAME=new, NAME_PREVIOUS=old         rolling-back: NAME=old, NAME_PREVIOUS=new,
                                                    gate, drain, drop NAME_PREVIOUS -> aborted
rolling-back    NAME=old, NAME_PREVIOUS=new         continues the roll-back
dropped         NAME=new                            nothing to undo (old value gone): finishes
done/aborted    -                                   nothing to abort
==============  ==================================  =========================================
"""

from __future__ import annotations

import base64
import datetime
import getpass
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..secret import Secret, fingerprint_bytes
from .commands import run_command
from .discover import (
    ANNOTATION_PREFIX,
    ExternalOwner,
    SecretObject,
    external_owner,
    list_pods,
    list_workloads,
    read_secret,
    secret_path,
)
from .gates import Expect, GateFailed, GateNode, Lagging, run_gate
from .kube import Kube, KubeError
from .progress import Reporter
from .status import StatusReader, VerifyCounters

__all__ = ["Engine", "Node", "RotateError", "Settings"]

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
    secret: SecretObject | None = None
    old: bytes | None = None
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


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class Engine:
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
            if all(fresh.data.get(k) == v for k, v in data.items()):
                return
            if time.monotonic() > deadline:
                raise RotateError(
                    f"{node.where}: {node.owner.who if node.owner else 'its owner'} did not"
                    f" sync the store's change into the Secret within"
                    f" {self.settings.gate_timeout:g} s (phase {phase})"
                )
            time.sleep(self.settings.poll)

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

    def _refresh_tokens(self) -> None:
        """Tokens for /status: the ones accepted now; the old one first while it lasts."""
        token_key = self.settings.status_token_key
        for node in self.nodes:
            assert node.secret is not None and node.reader is not None
            candidates: list[bytes | None] = []
            if token_key == self.settings.key:
                candidates.append(node.old)
            candidates += [node.secret.data.get(token_key),
                           node.secret.data.get(token_key + "_PREVIOUS")]
            tokens: list[bytes] = []
            for value in candidates:
                # Only what an HTTP header can carry as is (visible ASCII): anything else
                # could never be the token a sidecar compares, and would fail to encode.
                if value and value not in tokens and all(32 < b < 127 for b in value):
                    tokens.append(value)
            node.reader.tokens = tokens
            for token in tokens:
                self.reporter.add_secret(token)

    def _cmd_env(self, phase: str) -> dict[str, str]:
        return {
            "AGENTOS_ROTATE_KEY": self.settings.key,
            "AGENTOS_ROTATE_PHASE": phase,
            "AGENTOS_ROTATE_NEW_FINGERPRINT": self.fp_new,
        }

    # -- gates --------------------------------------------------------------------------
    def _gate(self, phase: str, nodes: list[Node], expect: Callable[[Node], Expect]) -> None:
        if not nodes:
            return
        self._refresh_tokens()
        by_label = {n.label: expect(n) for n in nodes}
        described = "; ".join(f"{label}: {e.describe()}" if len(nodes) > 1 else e.describe()
                              for label, e in by_label.items())
        self.reporter.event("gate", f"gate {phase}: waiting until every pod has {described}"
                            f" (timeout {self.settings.gate_timeout:g} s)", phase=phase,
                            timeout_s=self.settings.gate_timeout)
        total = 0
        for node in nodes:
            assert node.gate is not None
            total += run_gate(phase, [node.gate], by_label[node.label],
                              timeout=self.settings.gate_timeout, poll=self.settings.poll,
                              reporter=self.reporter, workers=self.settings.workers)
        note = "" if total else " (no running pod mounts the Secret)"
        self.reporter.event("gate-passed", f"gate {phase} passed: {total} pods{note}",
                            phase=phase, pods=total)

    def _gate_failed(self, failed: GateFailed) -> RotateError:
        if failed.problem:
            self.reporter.event("gate-failed", f"gate {failed.phase} failed: {failed.problem}",
                                phase=failed.phase, problem=failed.problem, lagging=[])
            return RotateError(f"gate {failed.phase}: {failed.problem}; nothing further was"
                               " changed. Fix the permission, then 'rotate --resume'")
        lagging = [{"context": lag.node, "pod": lag.pod, "reason": lag.reason}
                   for lag in failed.lagging]
        self.reporter.event(
            "gate-failed",
            f"gate {failed.phase} timed out; {len(lagging)} pods lag:"
            + "".join(f"\n  {lag.pod}: {lag.reason}" for lag in failed.lagging),
            phase=failed.phase, lagging=lagging,
        )
        return RotateError(
            f"gate {failed.phase}: timed out; nothing was dropped. Fix the lagging pods,"
            " then 'rotate --resume' (or 'rotate --abort')"
        )

    # -- drain --------------------------------------------------------------------------
    def _drain(self, phase: str, nodes: list[Node], key: str) -> None:
        """The grace window since the switch, then a quiet period without 'previous' matches."""
        since = max((_parse_time(n.secret.annotations.get(A_SINCE)) or time.time()
                     for n in nodes if n.secret is not None), default=time.time())
        grace_end = since + self.settings.grace
        start = time.monotonic()
        self.reporter.event("drain", f"drain: grace window {self.settings.grace:g} s from"
                            f" {phase}, then {self.settings.quiet:g} s without a 'previous'"
                            " match where pods expose verify counters", phase=phase,
                            grace_s=self.settings.grace, quiet_s=self.settings.quiet)
        history: dict[tuple[str, str], tuple[float, float]] = {}  # total, since when
        while True:
            lagging: list[Lagging] = []
            total = 0
            measured = 0
            for node in nodes:
                assert node.reader is not None
                try:
                    pods = [p for p in list_pods(node.kube, node.namespace, node.name,
                                                 selector=self.settings.selector)
                            if p.metrics is not None]
                except KubeError as exc:
                    raise self._api_failure(node, exc, "listing pods") from None
                for pod in pods:
                    total += 1
                    counters = node.reader.verify_counters(pod, key)
                    if not isinstance(counters, VerifyCounters):
                        lagging.append(Lagging(node.label, pod.name, str(counters)))
                        continue
                    measured += 1
                    quiet_for = self._quiet_for(history, (node.label, pod.uid), counters)
                    if quiet_for < self.settings.quiet:
                        lagging.append(Lagging(
                            node.label, pod.name,
                            f"'previous' match seen {quiet_for:.0f} s ago"
                            f" (needs {self.settings.quiet:g} s quiet)"))
            remaining = grace_end - time.time()
            waited = time.monotonic() - start
            self.reporter.progress("drain", total - len(lagging), total, waited,
                                   [lag.pod for lag in lagging])
            if remaining <= 0 and not lagging:
                self.reporter.event("drain-done", f"drain done ({measured} pods with verify"
                                    " counters)", phase=phase, pods_with_counters=measured)
                return
            if waited > self.settings.drain_timeout:
                raise GateFailed("drain", lagging or [Lagging("-", "-", "grace window")])
            time.sleep(max(0.05, min(self.settings.poll, remaining if remaining > 0
                                     else self.settings.poll)))

    def _quiet_for(self, history: dict[tuple[str, str], tuple[float, float]],
                   key: tuple[str, str], counters: VerifyCounters) -> float:
        now = time.time()
        if counters.last_previous is not None:
            return max(0.0, now - counters.last_previous)
        total, since = history.get(key, (counters.previous_total, now))
        if counters.previous_total != total:
            since = now
        history[key] = (counters.previous_total, since)
        if counters.previous_total == 0:
            return float("inf")
        return now - since

    # -- entry points -------------------------------------------------------------------
    def _check_start(self, node: Node) -> None:
        secret = self._read(node)
        key, previous = self.settings.key, self.settings.previous
        annotations = secret.annotations
        if annotations.get(A_PHASE) in IN_PROGRESS:
            raise RotateError(
                f"{node.where}: a rotation of {annotations.get(A_KEY, '?')} is in progress"
                f" (phase {annotations.get(A_PHASE)}, started {annotations.get(A_STARTED, '?')}"
                f" by {annotations.get(A_OWNER, 'unknown')}); finish it with 'rotate --resume'"
                " or roll it back with 'rotate --abort'"
            )
        if node.owner is not None and not self.settings.store_cmd:
            raise RotateError(
                f"{node.where} is written by {node.owner.who} ({node.owner.evidence}); a change"
                " made here would be reverted at its next refresh. Rotate it in the store"
                " with --store-cmd (rotate then drives the phases through the store and gates"
                " on the pods), or let the owner rotate it", code=2,
            )
        if key not in secret.data:
            raise RotateError(f"{node.where} has no key {key}", code=2)
        if previous in secret.data:
            raise RotateError(
                f"{node.where} already holds {previous} without a rotation in progress (a"
                " manual rotation?); finish it by hand or remove the key first", code=2,
            )
        node.old = secret.data[key]

    def plan(self) -> int:
        key, previous = self.settings.key, self.settings.previous
        s = self.settings
        for node in self.nodes:
            secret = self._read(node)
            phase = secret.annotations.get(A_PHASE)
            owner = node.owner
            self.reporter.event(
                "plan-secret",
                f"{node.where}: key {key} {'present' if key in secret.data else 'MISSING'},"
                f" fingerprint {self._fp(secret.data.get(key)) or '-'};"
                f" rotation state: {phase or 'none'}"
                + (f"; written by {owner.who} ({owner.evidence})" if owner else ""),
                context=node.label, namespace=node.namespace, secret=node.name,
                key_present=key in secret.data, phase=phase,
                owner=owner.who if owner else None,
            )
            try:
                workloads = list_workloads(node.kube, node.namespace, node.name)
                pods = list_pods(node.kube, node.namespace, node.name, selector=s.selector)
            except KubeError as exc:
                raise self._api_failure(node, exc, "listing workloads and pods") from None
            for workload in workloads:
                how = "env only: NOT rotated in place, needs a restart" if workload.env_only \
                    else "volume"
                self.reporter.event("plan-workload", f"  {workload.kind}/{workload.name}"
                                    f" ({how})", context=node.label, kind=workload.kind,
                                    name=workload.name, env_only=workload.env_only)
            for pod in pods:
                port = pod.status_port if pod.status_port is not None else "NO SIDECAR"
                metrics = f", verify metrics {pod.metrics[0]}/{pod.metrics[1]}" \
                    if pod.metrics else ""
                self.reporter.event("plan-pod", f"  pod {pod.name} ({pod.owner}), /status"
                                    f" port {port}{metrics}{'' if pod.ready else ', NOT READY'}",
                                    context=node.label, pod=pod.name, owner=pod.owner,
                                    status_port=pod.status_port, ready=pod.ready,
                                    verify_metrics=pod.metrics is not None)
        order = " then ".join(n.label for n in self.nodes)
        steps = [
            f"1. stage: {previous} = new (one Secret write per context: {order});"
            f" gate: every pod has applied the new fingerprint under {previous}"
            f" (timeout {s.gate_timeout:g} s, poll {s.poll:g} s)",
            "2. test: " + ("--test-cmd with the new value on stdin; failure aborts"
                           if s.test_cmd else "none (no --test-cmd)"),
            f"3. switch: {key} = new, {previous} = old in one write; gate: every pod has"
            f" applied the new {key} (timeout {s.gate_timeout:g} s)",
            f"4. drain: grace window {s.grace:g} s, then {s.quiet:g} s without a 'previous'"
            f" match where pods expose verify counters (timeout {s.drain_timeout:g} s)",
            f"5. drop: remove {previous}; gate: no pod mounts it (timeout"
            f" {s.gate_timeout:g} s)",
            "6. revoke: " + ("--revoke-cmd with the old value on stdin"
                             if s.revoke_cmd else "none (no --revoke-cmd)"),
        ]
        if s.store_cmd:
            steps.append("writes go through --store-cmd; each waits for the owner to sync"
                         f" the Secret; final check {s.refresh_interval:g} s after the end")
        for step in steps:
            self.reporter.event("plan-phase", step)
        self.reporter.event("plan-done", "plan only: nothing was changed")
        return 0

    def start(self, new: Secret) -> int:
        for node in self.nodes:
            self._check_start(node)
        self.new = new.reveal_bytes()
        self.reporter.add_secret(self.new)
        for node in self.nodes:
            assert node.old is not None
            self.reporter.add_secret(node.old)
            if node.old == self.new:
                raise RotateError(f"{node.where}: the new value equals the current one", 2)
        self.fp_new = fingerprint_bytes(self.new)
        self.reporter.event("start", f"rotating {self.settings.key} to {self.fp_new}"
                            f" (run {self.run_id}, {self.owner})", key=self.settings.key,
                            new_fingerprint=self.fp_new, run=self.run_id)
        return self._forward()

    def _load_in_progress(self, verb: str) -> bool:
        """Read every node's state and values back from the cluster (resume, abort).

        False when nothing is in progress because the last rotation of the key finished.
        """
        key, previous = self.settings.key, self.settings.previous
        news: set[bytes] = set()
        for node in self.nodes:
            secret = self._read(node)
            annotations = secret.annotations
            phase = node.raw_phase
            if phase is None:
                continue
            if annotations.get(A_KEY) != key:
                raise RotateError(f"{node.where}: the rotation there is of"
                                  f" {annotations.get(A_KEY)}, not {key}", 2)
            if phase in (STAGED, ROLLING_BACK):
                node.old, new = secret.data.get(key), secret.data.get(previous)
            elif phase == SWITCHED:
                new, node.old = secret.data.get(key), secret.data.get(previous)
            elif phase == DROPPED:
                new, node.old = secret.data.get(key), None
            else:
                continue
            if new is None or (phase != DROPPED and node.old is None) or (
                fingerprint_bytes(new) != annotations.get(A_NEW)
            ):
                raise RotateError(
                    f"{node.where}: its data no longer matches the rotation's fingerprints"
                    f" (phase {phase}); it was changed outside rotate. Inspect it by hand", 1)
            news.add(new)
        if not news:
            finished = {n.raw_phase for n in self.nodes if n.secret is not None
                        and n.secret.annotations.get(A_KEY) == key}
            if finished and finished <= {DONE, ABORTED} and len(finished) == 1:
                # e.g. killed right after its last write: the goal is reached already
                last = finished.pop()
                self.reporter.event(verb, f"nothing to {verb}: the last rotation of {key} is"
                                    f" {last} already", phase=last)
                return False
            raise RotateError(f"nothing to {verb}: no rotation of {key} is in progress", 2)
        if len(news) > 1:
            raise RotateError("the contexts hold different new values; resolve by hand", 1)
        self.new = news.pop()
        self.fp_new = fingerprint_bytes(self.new)
        self.reporter.add_secret(self.new)
        for node in self.nodes:
            if node.old:
                self.reporter.add_secret(node.old)
        # Take over: our run id on every node in progress, so an older process still
        # running stops at its next write instead of interleaving with this one.
        for node in self.nodes:
            phase = node.raw_phase
            annotations = node.secret.annotations if node.secret else {}
            if phase in IN_PROGRESS or (
                phase in (DONE, ABORTED) and annotations.get(A_KEY) == key
                and annotations.get(A_NEW) == self.fp_new
            ):
                self._write(node, phase or STAGED, {})
        phases = ", ".join(f"{n.label}: {n.phase or 'none'}" for n in self.nodes)
        self.reporter.event(verb, f"{verb} {key} -> {self.fp_new} (run {self.run_id}) from"
                            f" {phases}", key=key, new_fingerprint=self.fp_new, run=self.run_id)
        return True

    def resume(self) -> int:
        if not self._load_in_progress("resume"):
            return 0
        if any(n.phase == ROLLING_BACK for n in self.nodes):
            return self._rollback()
        return self._forward()

    def abort(self) -> int:
        if not self._load_in_progress("abort"):
            return 0
        phases = {n.phase for n in self.nodes}
        if DROPPED in phases or DONE in phases:
            self.reporter.event("abort", "the old value is already dropped on at least one"
                                " context: nothing can be rolled back; finishing the rotation"
                                " instead")
            return self._forward()
        return self._rollback()

    # -- sequences ----------------------------------------------------------------------
    def _at(self, phase: str) -> list[Node]:
        return [n for n in self.nodes if n.phase == phase]

    def _step(self, phase: str, data_for: Callable[[Node], dict[str, bytes | None]]) -> None:
        for node in reversed(self.nodes):  # the runbook's order: node B, then node A
            if _ORDER.get(node.phase, 0) < _ORDER[phase]:
                self._write(node, phase, data_for(node))

    def _forward(self) -> int:
        s = self.settings
        key, previous = s.key, s.previous
        new = self.new
        assert new is not None
        fp_new = self.fp_new
        try:
            if min(_ORDER.get(n.phase, 0) for n in self.nodes) < _ORDER[SWITCHED]:
                self._step(STAGED, lambda n: {previous: new})
                self._gate(STAGED, self._at(STAGED), lambda n: Expect(((previous, fp_new),)))
                if s.test_cmd and self._at(STAGED):
                    if not self._test():
                        return self._abort_staged("--test-cmd failed")
            self._step(SWITCHED, lambda n: {key: new, previous: n.old})
            self._gate(SWITCHED, self._at(SWITCHED), lambda n: Expect(((key, fp_new),)))
            if self._at(SWITCHED):
                self._drain(SWITCHED, self._at(SWITCHED), key)
            old_values = {n.label: n.old for n in self.nodes}
            self._step(DROPPED, lambda n: {previous: None})
            self._gate(DROPPED, self._at(DROPPED),
                       lambda n: Expect(((previous, None), (key, fp_new))))
            problem = self._revoke(old_values)
            self._step(DONE, lambda n: {})
            if problem:
                raise RotateError(problem)
            self._final_checks()
        except GateFailed as failed:
            raise self._gate_failed(failed) from None
        self.reporter.event("done", f"rotation of {key} done: {fp_new} everywhere",
                            key=key, new_fingerprint=fp_new)
        return 0

    def _test(self) -> bool:
        assert self.settings.test_cmd is not None and self.new is not None
        result = run_command(self.settings.test_cmd, self.new,
                             timeout=self.settings.cmd_timeout, env=self._cmd_env("test"),
                             redact_values=self._known_values())
        self.reporter.event("test-cmd", f"--test-cmd: {result.summary}", ok=result.ok,
                            summary=self.reporter.redact(result.summary))
        return result.ok

    def _abort_staged(self, why: str) -> int:
        previous = self.settings.previous
        self.reporter.event("abort", f"aborting: {why}; removing the staged {previous}",
                            reason=why)
        for node in reversed(self.nodes):
            if node.phase == STAGED:
                self._write(node, ABORTED, {previous: None})
        try:
            self._gate(ABORTED, self._at(ABORTED), lambda n: Expect(((previous, None),)))
        except GateFailed as failed:
            raise self._gate_failed(failed) from None
        self.reporter.event("aborted", f"aborted: {self.settings.key} keeps its old value")
        return 1

    def _rollback(self) -> int:
        s = self.settings
        key, previous = s.key, s.previous
        new = self.new
        assert new is not None
        try:
            if all(n.phase in (STAGED, None, ABORTED) for n in self.nodes):
                self._abort_staged("--abort")
                return 0
            for node in reversed(self.nodes):
                if node.phase in (STAGED, SWITCHED):
                    self._write(node, ROLLING_BACK, {key: node.old, previous: new})
            rolling = self._at(ROLLING_BACK)
            self._gate(ROLLING_BACK, rolling,
                       lambda n: Expect(((key, fingerprint_bytes(n.old or b"")),)))
            self._drain(ROLLING_BACK, rolling, key)
            for node in reversed(rolling):
                self._write(node, ABORTED, {previous: None})
            self._gate(ABORTED, self._at(ABORTED), lambda n: Expect(((previous, None),)))
        except GateFailed as failed:
            raise self._gate_failed(failed) from None
        self.reporter.event("aborted", f"rolled back: {key} has its old value again")
        return 0

    def _revoke(self, old_values: dict[str, bytes | None]) -> str | None:
        """Run --revoke-cmd with each old value; a problem text when it could not."""
        if not self.settings.revoke_cmd:
            return None
        olds = {v for v in old_values.values() if v}
        if not olds:
            return (
                "--revoke-cmd: the old value was dropped before this process started (a"
                " resume after the drop); it is no longer in the cluster, by design. Revoke"
                " the credential with fingerprint "
                + ", ".join(sorted({n.secret.annotations.get(A_OLD, "?") for n in self.nodes
                                    if n.secret}))
                + " by hand"
            )
        for old in olds:
            result = run_command(self.settings.revoke_cmd, old,
                                 timeout=self.settings.cmd_timeout,
                                 env={**self._cmd_env("revoke"),
                                      "AGENTOS_ROTATE_OLD_FINGERPRINT": fingerprint_bytes(old)},
                                 redact_values=self._known_values())
            self.reporter.event("revoke-cmd", f"--revoke-cmd: {result.summary}", ok=result.ok,
                                summary=result.summary)
            if not result.ok:
                return (f"--revoke-cmd failed ({result.summary}); the rotation is complete,"
                        " revoke the old credential by hand")
        return None

    def _final_checks(self) -> None:
        key = self.settings.key
        if self.settings.store_cmd and self.settings.refresh_interval > 0:
            self.reporter.event("final-check", f"waiting {self.settings.refresh_interval:g} s"
                                " (a refresh interval) to confirm the owner keeps the value")
            time.sleep(self.settings.refresh_interval)
            for node in self.nodes:
                self._read(node)
            self._gate("final-check", self.nodes, lambda n: Expect(((key, self.fp_new),)))
            for node in self.nodes:
                assert node.secret is not None
                if node.secret.data.get(key) != self.new:
                    raise RotateError(f"{node.where}: its owner reverted {key} after the"
                                      " rotation; the store does not hold the new value")
        if len(self.nodes) > 1:
            self._compare_nodes()

    def _compare_nodes(self) -> None:
        """AS301 across contexts: every node's NAME has the same fingerprint (check's rule)."""
        from ..check.inputs import Environment
        from ..check.rules_nodes import check_fingerprints
        from ..secret import SALT_VARIABLE

        key = self.settings.key
        first = self.nodes[0]
        for node in self.nodes:
            self._read(node)
        assert first.secret is not None
        expected = self._fp(first.secret.data.get(key))
        for node in self.nodes[1:]:
            assert node.secret is not None
            value = node.secret.data.get(key, b"").decode("utf-8", "replace")
            variables = {key: value}
            if os.environ.get(SALT_VARIABLE):
                variables[SALT_VARIABLE] = os.environ[SALT_VARIABLE]
            env = Environment(variables, node.where, "prod")
            findings = check_fingerprints(env, {key: expected})
            for finding in findings:
                raise RotateError(f"{finding.rule.id}: {finding.message}")
        self.reporter.event("compare", f"{key}: the same fingerprint on every context"
                            f" ({expected})", fingerprint=expected)


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
