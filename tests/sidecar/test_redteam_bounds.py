"""Red team, unbounded time or memory in what the sidecar reads and hashes.

Each failed before its fix: links back to a watched directory fanned the digest out
exponentially, the digest had no entry or byte budget, and the pid file and the CA
bundle were opened with a plain ``open()`` that blocks forever on a FIFO.
"""

from __future__ import annotations

import os
import threading

from agentos_secrets import watch
from agentos_secrets.sidecar.actions.process import TargetSpec, find_target
from agentos_secrets.sidecar.actions.rollout import RolloutAction


def _counting_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = watch.read_secret_file

    def counting(path, **kw):
        reads.append(path)
        return real(path, **kw)

    monkeypatch.setattr(watch, "read_secret_file", counting)
    return reads


def test_links_back_to_the_watched_directory_are_hashed_once(tmp_path, monkeypatch):
    (tmp_path / "KEY").write_text("v")
    for i in range(3):
        os.symlink(".", tmp_path / f"self{i}")
        os.symlink("..", tmp_path / f"up{i}")
    reads = _counting_reads(monkeypatch)
    result = watch.digest(str(tmp_path))
    # Before: 3 links to "." alone gave 3**8 paths down to the nesting limit, each read.
    assert reads == [str(tmp_path / "KEY")]
    assert result.keys == ("KEY",)
    # a link back is still part of the content: removing one is a change
    os.unlink(tmp_path / "self0")
    assert watch.digest(str(tmp_path)).value != result.value


def test_a_loop_between_two_nested_directories_terminates(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f").write_text("x")
    os.symlink("../b", tmp_path / "a" / "to_b")
    os.symlink("../a", tmp_path / "b" / "to_a")
    reads = _counting_reads(monkeypatch)
    watch.digest(str(tmp_path))
    assert len(reads) == 1


def test_the_number_of_entries_hashed_is_bounded(tmp_path, monkeypatch):
    for i in range(30):
        (tmp_path / f"k{i:02d}").write_text(str(i))
    reads = _counting_reads(monkeypatch)
    result = watch.digest(str(tmp_path), max_entries=10)
    assert reads == [] and any("more than 10 entries" in p for p in result.problems)
    nested = tmp_path / "n"
    nested.mkdir()
    for i in range(30):
        (nested / f"x{i:02d}").write_text(str(i))
    reads.clear()
    result = watch.digest(str(nested.parent), max_entries=40)
    assert len(reads) <= 40 and result.problems


def test_the_bytes_hashed_are_bounded(tmp_path, monkeypatch):
    for i in range(10):
        (tmp_path / f"k{i}").write_bytes(b"x" * 1000)
    reads = _counting_reads(monkeypatch)
    result = watch.digest(str(tmp_path), max_total=3500)
    assert len(reads) <= 5 and result.problems


def _finishes(function) -> bool:
    thread = threading.Thread(target=function, daemon=True)
    thread.start()
    thread.join(20)  # a generous bound: the old code never returned at all
    return not thread.is_alive()


def test_a_fifo_pid_file_does_not_hang_the_target_lookup(tmp_path):
    fifo = tmp_path / "app.pid"
    os.mkfifo(fifo)
    answer: list[object] = []
    assert _finishes(lambda: answer.append(find_target(TargetSpec(pidfile=str(fifo)))))
    target, why = answer[0]  # type: ignore[misc]
    assert target is None and "cannot be read" in (why or "")


def test_a_fifo_ca_file_does_not_hang_the_rollout(tmp_path):
    fifo = tmp_path / "ca.crt"
    os.mkfifo(fifo)
    token = tmp_path / "token"
    token.write_text("t")
    action = RolloutAction(deployment="d", namespace="n", token_file=str(token),
                           ca_file=str(fifo), api_server="https://127.0.0.1:1")
    answer: list[str | None] = []
    assert _finishes(lambda: answer.append(action.ready()))
    assert "--ca-file" in (answer[0] or "")
