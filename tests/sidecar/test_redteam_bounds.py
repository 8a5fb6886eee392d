"""Red team, unbounded time or memory in what the sidecar reads and hashes.

Each failed before its fix: links back to a watched directory fanned the digest out
exponentially, the digest had no entry or byte budget, and the pid file and the CA
bundle were opened with a plain ``open()`` that blocks forever on a FIFO; the ``http``
action read a reload endpoint's whole answer into memory, however long.
"""

from __future__ import annotations

import contextlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from agentos_secrets import digests, watch
from agentos_secrets.sidecar.actions.base import ActionError
from agentos_secrets.sidecar.actions.bounded import read_body
from agentos_secrets.sidecar.actions.http import HttpAction
from agentos_secrets.sidecar.actions.process import TargetSpec, find_target
from agentos_secrets.sidecar.actions.rollout import RolloutAction


def _counting_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = digests.read_secret_file

    def counting(path, **kw):
        reads.append(path)
        return real(path, **kw)

    # The digest reads through ``digests``' own name (``watch`` re-exports the digest).
    monkeypatch.setattr(digests, "read_secret_file", counting)
    return reads


def test_links_back_to_the_watched_directory_are_hashed_once(tmp_path, monkeypatch):
    volume = tmp_path / "vol"  # its parent holds nothing else
    volume.mkdir()
    (volume / "KEY").write_text("v")
    for i in range(3):
        os.symlink(".", volume / f"self{i}")
        os.symlink("..", volume / f"up{i}")
    reads = _counting_reads(monkeypatch)
    result = watch.digest(str(volume))
    # Before: 3 links to "." alone gave 3**8 paths down to the nesting limit, each read.
    assert reads == [str(volume / "KEY")]
    assert result.keys == ("KEY",)
    # a link back is still part of the content: removing one is a change
    os.unlink(volume / "self0")
    assert watch.digest(str(volume)).value != result.value


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


@pytest.fixture
def endless_server():
    """A loopback endpoint answering 200 with an endless body (1 KiB chunks)."""
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            with contextlib.suppress(OSError):
                while not stop.is_set():
                    self.wfile.write(b"x" * 1024)

        do_GET = do_POST

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/reload"
    stop.set()
    server.shutdown()
    server.server_close()


def test_an_endless_reload_answer_is_not_read_to_its_end(endless_server):
    # httpx's request() read the whole body into memory: this never returned.
    action = HttpAction(endless_server, timeout=5)
    outcome: list[object] = []

    def run() -> None:
        try:
            action.apply("")
            outcome.append("ok")
        except ActionError as exc:
            outcome.append(exc)

    try:
        assert _finishes(run)
    finally:
        action.close()
    assert outcome == ["ok"]  # the status was 200; the body is not used


def test_read_body_stops_at_its_limit(endless_server):
    with httpx.Client() as client, client.stream("GET", endless_server) as response:
        assert read_body(response, limit=10_000, seconds=5) is None
