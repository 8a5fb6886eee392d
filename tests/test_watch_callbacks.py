"""``Loader.watch`` on real inotify: exactly one callback per real change, none for a
no-op, fingerprints and never values, and a clean ``stop()``.

"Nothing happened" is proven with a barrier rather than a sleep: after the no-op
operations the test changes a *sentinel* secret in the same directory and waits for its
callback. Callbacks run in order on one thread, and the check triggered by the sentinel
runs after every earlier event, so when the sentinel's callback has arrived, any
callback the no-ops would have caused has arrived too.
"""

from __future__ import annotations

import logging
import os
import threading
from itertools import pairwise

import pytest

from agentos_secrets import Loader, Secret
from agentos_secrets.testing import AtomicWriter

NAME, SENTINEL = "AGENTOS_SERVICE_TOKEN", "SENTINEL"
TIMEOUT = 20.0  # generous: only reached when a test fails


def fp(value: str) -> str:
    return Secret(value).fingerprint()


class Recorder:
    """The callback: records (name, old, new) and lets the test wait for a condition."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str | None]] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()

    def __call__(self, name: str, old: str | None, new: str | None) -> None:
        with self._cond:
            self.calls.append((name, old, new))
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def wait_for(self, count: int, name: str | None = None) -> None:
        def enough() -> bool:
            return len([c for c in self.calls if name is None or c[0] == name]) >= count

        with self._cond:
            assert self._cond.wait_for(enough, TIMEOUT), f"no callback: {self.calls}"

    def of(self, name: str) -> list[tuple[str, str | None, str | None]]:
        with self._cond:
            return [c for c in self.calls if c[0] == name]


def _write(path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# -- kubelet volume -----------------------------------------------------------------------


@pytest.fixture
def kubelet(tmp_path, canary):
    writer = AtomicWriter(tmp_path / "secrets")
    payload = {NAME: canary.value + "-1", SENTINEL: "s-0"}
    writer.write(payload)
    loader = Loader(env={}, secret_dirs=[writer.target_dir])
    recorder = Recorder()
    handle = loader.watch(recorder, [NAME, SENTINEL], debounce=0.05)
    yield writer, payload, loader, recorder, handle
    handle.stop()


def _barrier(writer: AtomicWriter, payload: dict[str, str], recorder: Recorder) -> None:
    count = len(recorder.of(SENTINEL))
    payload[SENTINEL] = f"s-{count + 1}"
    assert writer.write(payload)
    recorder.wait_for(count + 1, SENTINEL)


def test_one_callback_per_kubelet_rotation(kubelet, canary):
    writer, payload, loader, recorder, handle = kubelet
    assert handle.directories == (writer.target_dir,)
    for i in (2, 3):
        payload[NAME] = f"{canary.value}-{i}"
        assert writer.write(payload)
        recorder.wait_for(i - 1, NAME)
    _barrier(writer, payload, recorder)
    assert recorder.of(NAME) == [
        (NAME, fp(canary.value + "-1"), fp(canary.value + "-2")),
        (NAME, fp(canary.value + "-2"), fp(canary.value + "-3")),
    ]
    assert recorder.threads == {"agentos-secrets-watch"}
    # The watch read through the Loader: get() agrees and the grace window saw it.
    assert loader.get(NAME).reveal() == canary.value + "-3"
    assert loader.verify(NAME, canary.value + "-2") == "previous"
    canary.assert_absent(recorder.calls)


def test_no_callback_for_noops_on_a_kubelet_volume(kubelet, canary):
    writer, payload, loader, recorder, _ = kubelet
    generation = os.path.join(writer.target_dir, writer.current_generation())
    assert writer.write(payload) is False  # unchanged payload: the kubelet writes nothing
    os.utime(os.path.join(generation, NAME))  # touch
    os.chmod(os.path.join(generation, NAME), 0o600)  # chmod
    for _ in range(20):  # the app (and the kubelet's re-check) reading the files
        loader.get(NAME)
        with open(os.path.join(writer.target_dir, NAME), "rb") as handle:
            handle.read()
    _barrier(writer, payload, recorder)
    assert recorder.of(NAME) == []


def test_two_keys_rotated_together_give_one_callback_each(kubelet, canary):
    writer, payload, _, recorder, _ = kubelet
    payload[NAME] = canary.value + "-2"
    payload[SENTINEL] = "s-together"
    assert writer.write(payload)
    recorder.wait_for(2)
    _barrier(writer, payload, recorder)
    assert len(recorder.of(NAME)) == 1
    assert recorder.of(SENTINEL)[0] == (SENTINEL, fp("s-0"), fp("s-together"))


def test_changes_in_quick_succession_are_coalesced(tmp_path, canary):
    writer = AtomicWriter(tmp_path / "secrets")
    writer.write({NAME: canary.value + "-0"})
    loader = Loader(env={}, secret_dirs=[writer.target_dir])
    recorder = Recorder()
    # A debounce far longer than five writes take, so coalescing cannot depend on load.
    with loader.watch(recorder, [NAME], debounce=2.0, max_wait=10.0):
        for i in range(1, 6):
            writer.write({NAME: f"{canary.value}-{i}"})
        recorder.wait_for(1)
        final = fp(canary.value + "-5")
        with recorder._cond:
            recorder._cond.wait_for(lambda: recorder.calls[-1][2] == final, TIMEOUT)
    calls = recorder.of(NAME)
    # A chain from the first value to the last, with fewer callbacks than writes.
    assert calls[0][1] == fp(canary.value + "-0") and calls[-1][2] == final
    assert all(a[2] == b[1] for a, b in pairwise(calls))
    assert len(calls) < 5


def test_key_appearing_and_vanishing(tmp_path, canary):
    writer = AtomicWriter(tmp_path / "secrets")
    writer.write({SENTINEL: "s"})
    loader = Loader(env={}, secret_dirs=[writer.target_dir])
    recorder = Recorder()
    with loader.watch(recorder, [NAME]):
        writer.write({SENTINEL: "s", NAME: canary.value})
        recorder.wait_for(1)
        writer.write({SENTINEL: "s"})
        recorder.wait_for(2)
    assert recorder.calls == [(NAME, None, fp(canary.value)), (NAME, fp(canary.value), None)]


# -- plain files (docker secrets, NAME_FILE outside a kubelet volume) ------------------------


@pytest.fixture
def plain(tmp_path, canary):
    directory = tmp_path / "run-secrets"
    directory.mkdir()
    token, sentinel = directory / "token", directory / "sentinel"
    _write(token, canary.value + "-1")
    _write(sentinel, "s-0")
    loader = Loader(env={f"{NAME}_FILE": str(token), f"{SENTINEL}_FILE": str(sentinel)})
    loader.get(NAME), loader.get(SENTINEL)
    recorder = Recorder()
    handle = loader.watch(recorder, debounce=0.05)  # names=None: those resolved so far
    yield token, sentinel, recorder, handle
    handle.stop()


def _plain_barrier(sentinel, recorder: Recorder) -> None:
    count = len(recorder.of(SENTINEL))
    _write(sentinel, f"s-{count + 1}")
    recorder.wait_for(count + 1, SENTINEL)


def test_plain_file_replaced_by_rename(plain, canary):
    token, sentinel, recorder, handle = plain
    assert set(handle.names) == {NAME, SENTINEL}
    assert handle.directories == (str(token.parent),)
    _write(f"{token}.tmp", canary.value + "-2")
    os.rename(f"{token}.tmp", token)
    recorder.wait_for(1, NAME)
    _plain_barrier(sentinel, recorder)
    assert recorder.of(NAME) == [(NAME, fp(canary.value + "-1"), fp(canary.value + "-2"))]


def test_plain_file_written_in_place(plain, canary):
    token, sentinel, recorder, _ = plain
    _write(token, canary.value + "-written-in-place")
    recorder.wait_for(1, NAME)
    _plain_barrier(sentinel, recorder)
    assert recorder.of(NAME) == [
        (NAME, fp(canary.value + "-1"), fp(canary.value + "-written-in-place"))
    ]


def test_no_callback_for_noops_on_plain_files(plain, canary):
    token, sentinel, recorder, _ = plain
    _write(token, canary.value + "-1")  # identical rewrite in place
    _write(f"{token}.tmp", canary.value + "-1")
    os.rename(f"{token}.tmp", token)  # identical replacement by rename
    os.utime(token)
    os.chmod(token, 0o400)
    for _ in range(20):
        with open(token, "rb") as handle:
            handle.read()
    _plain_barrier(sentinel, recorder)
    assert recorder.of(NAME) == []


# -- lifecycle ------------------------------------------------------------------------------


def test_stop_is_clean(tmp_path, canary):
    writer = AtomicWriter(tmp_path / "secrets")
    writer.write({NAME: canary.value + "-1"})
    loader = Loader(env={}, secret_dirs=[writer.target_dir])
    recorder = Recorder()
    handle = loader.watch(recorder, [NAME])
    assert handle.alive()
    names_before = {t.name for t in threading.enumerate()}
    assert "agentos-secrets-watch" in names_before
    handle.stop()
    assert not handle.alive()
    assert "agentos-secrets-watch" not in {t.name for t in threading.enumerate()}
    writer.write({NAME: canary.value + "-2"})
    handle.stop()  # idempotent
    assert recorder.calls == []


def test_stop_from_inside_the_callback(tmp_path, canary):
    writer = AtomicWriter(tmp_path / "secrets")
    writer.write({NAME: canary.value + "-1"})
    loader = Loader(env={}, secret_dirs=[writer.target_dir])
    done = threading.Event()
    holder: list = []

    def callback(name: str, old: str | None, new: str | None) -> None:
        holder[0].stop()  # must not deadlock on joining its own thread
        done.set()

    holder.append(loader.watch(callback, [NAME]))
    writer.write({NAME: canary.value + "-2"})
    assert done.wait(TIMEOUT)
    holder[0]._thread.join(TIMEOUT)
    assert not holder[0].alive()


def test_a_failing_callback_is_logged_without_its_message(tmp_path, canary, caplog):
    writer = AtomicWriter(tmp_path / "secrets")
    writer.write({NAME: canary.value + "-1", SENTINEL: "s-0"})
    loader = Loader(env={}, secret_dirs=[writer.target_dir])
    recorder = Recorder()

    def callback(name: str, old: str | None, new: str | None) -> None:
        recorder(name, old, new)
        if name == NAME:
            raise RuntimeError(f"boom {canary.value}")

    with caplog.at_level(logging.ERROR, logger="agentos_secrets"):
        with loader.watch(callback, [NAME, SENTINEL], debounce=0.05):
            writer.write({NAME: canary.value + "-2", SENTINEL: "s-0"})
            recorder.wait_for(1, NAME)
            writer.write({NAME: canary.value + "-2", SENTINEL: "s-1"})  # still watching
            recorder.wait_for(1, SENTINEL)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(NAME in m and "RuntimeError" in m for m in errors)
    canary.assert_absent(*errors)


def test_nothing_to_watch_is_an_error():
    with pytest.raises(ValueError, match="nothing to watch"):
        Loader(env={}).watch(lambda *a: None)


def test_env_backed_names_are_static(canary):
    loader = Loader(env={NAME: canary.value})
    recorder = Recorder()
    with loader.watch(recorder, [NAME]) as handle:
        assert handle.directories == ()
    assert recorder.calls == []
