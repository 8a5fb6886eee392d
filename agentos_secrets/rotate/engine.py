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

The engine is layered, one module per job, each building on the one below:
``state`` (annotations, phases, ``Node``, ``Settings``, ``RotateError``) ->
``transitions`` (one Secret write per transition) -> ``gating`` (gates and drain) ->
``sequences`` (forward and roll-back) -> ``takeover`` (resume, abort) -> this module's
``Engine`` (the entry points: plan, start, resume, abort). The names the command uses are
importable from here.
"""

from __future__ import annotations

from ..secret import Secret, fingerprint_bytes
from .discover import list_pods, list_workloads
from .kube import KubeError
from .state import A_KEY, A_OWNER, A_PHASE, A_STARTED, IN_PROGRESS, Node, RotateError, Settings
from .takeover import Takeover

__all__ = ["Engine", "Node", "RotateError", "Settings"]


class Engine(Takeover):
    """A rotation over ``nodes``: ``plan``, ``start``, ``resume`` or ``abort``."""

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
