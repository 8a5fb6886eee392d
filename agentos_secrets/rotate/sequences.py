"""The phase sequences: forward (stage, test, switch, drain, drop, revoke, done) and back.

``_forward`` runs the phases of docs/rotate.md in order from wherever the nodes are (a
resume starts from the least advanced node), ``_rollback`` undoes a switch (rolling-back,
gate, drain, drop ``NAME_PREVIOUS`` -> aborted), ``_abort_staged`` undoes a stage. Each
step writes the nodes in the runbook's federation order (the last context first, so the
first context named is the last to change) and then gates them. After ``done`` the final
checks re-read every context: with ``--store-cmd`` that the owner kept the value, and
with several contexts that ``NAME`` has the same fingerprint everywhere (check's AS301).

``Sequences`` sits above ``gating.Gating`` and below ``engine.Engine`` (whose entry
points and ``takeover`` choose which sequence to run); it is the order of the phases and
nothing else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ..secret import fingerprint_bytes
from .commands import run_command
from .gates import Expect, GateFailed
from .gating import Gating
from .state import (
    _ORDER,
    A_OLD,
    ABORTED,
    DONE,
    DROPPED,
    ROLLING_BACK,
    STAGED,
    SWITCHED,
    Node,
    RotateError,
)

__all__ = ["Sequences"]


class Sequences(Gating):
    """The forward and roll-back sequences of phases (see the module docstring)."""

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
