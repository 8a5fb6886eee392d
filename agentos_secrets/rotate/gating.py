"""Waiting on the pods: the gates after each write, and the drain before the drop.

A gate waits until every pod that mounts the Secret reports the expected fingerprints
through its sidecar's ``/status`` (``gates.run_gate`` does the polling), with the tokens
the Secret accepts right now; a failed gate becomes a ``RotateError`` that names the
lagging pods. The drain waits for the grace window since the phase began (the
``phase-since`` annotation, so a resumed drain does not start again) and then for a quiet
period without a 'previous' match on every pod that exposes verify counters.

``Gating`` is the engine's middle layer: it only reads (the cluster and the pods) and
never writes the Secret, which is why it sits apart from ``transitions`` below it and
the phase sequences above it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .discover import list_pods
from .gates import Expect, GateFailed, Lagging, run_gate
from .kube import KubeError
from .state import A_SINCE, Node, RotateError, _parse_time
from .status import VerifyCounters
from .transitions import Transitions

__all__ = ["Gating"]


class Gating(Transitions):
    """Gates and drain over the nodes of a ``Transitions`` (see the module docstring)."""

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
        history: dict[tuple[str, str], tuple[float, float, bool]] = {}  # total, since, moved
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

    def _quiet_for(self, history: dict[tuple[str, str], tuple[float, float, bool]],
                   key: tuple[str, str], counters: VerifyCounters) -> float:
        now = time.time()
        first = key not in history
        total, since, moved = history.get(key, (counters.previous_total, now, False))
        if counters.previous_total != total:
            since, moved = now, True
        history[key] = (counters.previous_total, since, moved)
        if counters.last_previous is not None:
            # The gauge is the pod's wall clock, which may be behind ours: it is trusted
            # only once a second read saw the counter still, and a counter seen moving
            # here is a match whatever the gauge says.
            if first:
                return 0.0
            gauge = max(0.0, now - counters.last_previous)
            return min(gauge, now - since) if moved else gauge
        if counters.previous_total == 0:
            return float("inf")
        return now - since
