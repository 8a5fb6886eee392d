"""Resume and abort: read a rotation in progress back from the cluster and take it over.

``--resume`` and ``--abort`` start from the Secrets alone: each node's phase annotation
says which of its keys hold the old and the new value (see the phase table in
``engine``), checked against the fingerprints in the annotations, so data changed outside
``rotate`` is refused. The process then takes the rotation over with a write of its own
run id on every node in progress, so an older process still running stops at its next
write instead of interleaving. A rotation already finished (killed right after its last
write) is reported, not redone.

``Takeover`` sits between ``sequences.Sequences`` (which it continues: forward or back)
and ``engine.Engine`` (the entry points); it is kept apart because it is the one place
that reconstructs state instead of producing it.
"""

from __future__ import annotations

from ..secret import fingerprint_bytes
from .sequences import Sequences
from .state import (
    A_KEY,
    A_NEW,
    A_OLD,
    ABORTED,
    DONE,
    DROPPED,
    IN_PROGRESS,
    ROLLING_BACK,
    STAGED,
    SWITCHED,
    Node,
    RotateError,
)

__all__ = ["Takeover"]


class Takeover(Sequences):
    """``resume`` and ``abort`` of a rotation in progress (see the module docstring)."""

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
            recorded_old = annotations.get(A_OLD)
            if new is None or (phase != DROPPED and node.old is None) or (
                fingerprint_bytes(new) != annotations.get(A_NEW)
            ) or (node.old is not None and recorded_old
                  and fingerprint_bytes(node.old) != recorded_old):
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
            self._join_untouched(node, strict=verb == "resume")
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

    def _join_untouched(self, node: Node, *, strict: bool) -> None:
        """Learn the old value of a node this rotation has not written yet.

        With several contexts a kill can fall between two nodes' writes of the same
        phase: a node still untouched (no phase, or a finished phase of another rotation,
        or aborted: old value only) must join with its old value known, or the switch
        would write ``NAME_PREVIOUS`` = nothing there and reject every caller still on
        the old value.
        """
        assert node.secret is not None
        key, previous = self.settings.key, self.settings.previous
        annotations = node.secret.annotations
        phase = node.raw_phase
        if phase in IN_PROGRESS or (phase == DONE and annotations.get(A_KEY) == key
                                    and annotations.get(A_NEW) == self.fp_new):
            return
        data = node.secret.data
        if not strict:  # --abort never writes an untouched node: it only needs to know
            node.old = data.get(key)
            return
        if key not in data:
            raise RotateError(f"{node.where} has no key {key}", 2)
        if previous in data:
            raise RotateError(
                f"{node.where} already holds {previous} outside this rotation (a manual"
                " rotation?); finish it by hand or remove the key first", 2)
        if node.owner is not None and not self.settings.store_cmd:
            raise RotateError(f"{node.where} is written by {node.owner.who}"
                              f" ({node.owner.evidence}); resume with --store-cmd", 2)
        node.old = data[key]

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
