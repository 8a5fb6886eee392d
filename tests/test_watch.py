"""agentos_secrets.watch: hints from real inotify, digests as the truth, layouts."""

from __future__ import annotations

import os
import queue
import threading
import time

import pytest

from agentos_secrets.testing import AtomicWriter
from agentos_secrets.watch import (
    DirectoryWatcher,
    Hint,
    combine,
    digest,
    layout_of,
    parse_mountinfo,
)

TIMEOUT = 5.0


class Hints:
    """Collect hints from the watchdog thread."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Hint] = queue.Queue()

    def __call__(self, hint: Hint) -> None:
        self.queue.put(hint)

    def wait(self) -> Hint:
        return self.queue.get(timeout=TIMEOUT)

    def drain(self, settle: float = 0.3) -> list[Hint]:
        """Everything that arrives within ``settle`` seconds of quiet."""
        got: list[Hint] = []
        while True:
            try:
                got.append(self.queue.get(timeout=settle))
            except queue.Empty:
                return got


@pytest.fixture
def volume(tmp_path):
    writer = AtomicWriter(tmp_path / "vol")
    writer.write({"AGENTOS_SERVICE_TOKEN": "one", "OTHER": "x"})
    return writer


@pytest.fixture
def watcher_of():
    started: list[DirectoryWatcher] = []

    def make(*dirs: str) -> tuple[DirectoryWatcher, Hints]:
        hints = Hints()
        watcher = DirectoryWatcher(dirs, hints)
        assert watcher.start() == {}
        started.append(watcher)
        return watcher, hints

    yield make
    for watcher in started:
        watcher.stop()


def test_digest_changes_only_with_content(volume, canary):
    first = digest(volume.target_dir)
    assert first.keys == ("AGENTOS_SERVICE_TOKEN", "OTHER")
    # an identical rewrite writes nothing; a touch and a chmod change no content
    assert volume.write({"AGENTOS_SERVICE_TOKEN": "one", "OTHER": "x"}) is False
    key = os.path.join(volume.target_dir, "OTHER")
    os.utime(key)
    os.chmod(key, 0o600)
    assert digest(volume.target_dir).value == first.value
    volume.write({"AGENTOS_SERVICE_TOKEN": canary.value, "OTHER": "x"})
    second = digest(volume.target_dir)
    assert second.value != first.value
    canary.assert_absent(repr(second), second.problems)


def test_digest_of_a_file_covers_that_key_only(volume):
    path = os.path.join(volume.target_dir, "OTHER")
    before = digest(path)
    volume.write({"AGENTOS_SERVICE_TOKEN": "two", "OTHER": "x"})
    assert digest(path).value == before.value
    volume.write({"AGENTOS_SERVICE_TOKEN": "two", "OTHER": "y"})
    assert digest(path).value != before.value


def test_digest_reports_unreadable_keys_by_path_and_counts_them(tmp_path, canary):
    (tmp_path / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(tmp_path / "fifo")  # must not hang
    (tmp_path / "good").write_text(canary.value)
    (tmp_path / ".hidden").write_text("ignored")
    result = digest(str(tmp_path))
    assert result.keys == ("good",)
    assert len(result.problems) == 1 and str(tmp_path / "fifo") in result.problems[0]
    canary.assert_absent(result.problems, repr(result))
    (tmp_path / ".hidden").write_text("still ignored")
    assert digest(str(tmp_path)).value == result.value


def test_digest_hashes_binary_keys(tmp_path):
    (tmp_path / "keystore").write_bytes(b"\x00\xff\x01")
    first = digest(str(tmp_path))
    (tmp_path / "keystore").write_bytes(b"\x00\xff\x02")
    assert first.problems == ()
    assert digest(str(tmp_path)).value != first.value


def test_combine_is_order_independent_and_path_sensitive(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "k").write_text("1")
    (b / "k").write_text("1")
    da, db = digest(str(a)), digest(str(b))
    assert combine([da, db]) == combine({"x": db, "y": da})
    assert combine([da]) != combine([db])


def test_layouts(volume, tmp_path):
    assert layout_of(volume.target_dir).kind == "kubelet-volume"
    key = layout_of(os.path.join(volume.target_dir, "OTHER"))
    assert key.kind == "kubelet-key" and key.rotates and key.warning is None
    plain = tmp_path / "plain"
    plain.write_text("v")
    layout = layout_of(str(plain))
    assert layout.kind == "file" and not layout.rotates
    assert "subPath" in (layout.warning or "")
    assert layout_of(str(tmp_path)).kind == "directory"
    assert layout_of(str(tmp_path / "nope")).kind == "missing"


MOUNTINFO = (
    "22 1 0:21 / / rw,relatime - overlay overlay rw\n"
    "870 22 259:1 /var/lib/kubelet/pods/p/volumes/kubernetes.io~secret/s/..2026_11_26/TOKEN"
    " /etc/agentos/secrets/AGENTOS\\040TOKEN ro,relatime - ext4 /dev/root rw\n"
)


def test_parse_mountinfo_decodes_escapes():
    assert parse_mountinfo(MOUNTINFO) == {"/", "/etc/agentos/secrets/AGENTOS TOKEN"}


def test_a_mounted_single_file_is_a_subpath_warning(tmp_path, monkeypatch):
    import agentos_secrets.layouts as layouts  # layout_of looks its mounts up there

    mounted = tmp_path / "AGENTOS_SERVICE_TOKEN"
    mounted.write_text("v")
    monkeypatch.setattr(layouts, "_mount_points", lambda: {str(mounted)})
    layout = layout_of(str(mounted))
    assert layout.kind == "mounted-file" and not layout.rotates
    assert "subPath" in (layout.warning or "")


def test_kubelet_swap_gives_a_hint(volume, watcher_of):
    watcher, hints = watcher_of(volume.target_dir)
    assert watcher.alive()
    volume.write({"AGENTOS_SERVICE_TOKEN": "two", "OTHER": "x"})
    assert hints.wait().directory == volume.target_dir
    hints.drain()


def test_reads_touch_and_chmod_give_no_hint(tmp_path, watcher_of):
    (tmp_path / "k").write_text("v")
    _, hints = watcher_of(str(tmp_path))
    for _ in range(20):
        with open(tmp_path / "k") as handle:
            handle.read()
    os.utime(tmp_path / "k")
    os.chmod(tmp_path / "k", 0o600)
    assert hints.drain() == []
    (tmp_path / "k").write_text("w")  # an in-place write is a hint
    assert hints.wait().path == str(tmp_path / "k")


def test_file_path_is_watched_through_its_directory(volume, watcher_of):
    from agentos_secrets.watch import watch_directory

    key = os.path.join(volume.target_dir, "OTHER")
    assert watch_directory(key) == volume.target_dir
    _, hints = watcher_of(watch_directory(key))
    for value in ("a", "b", "c"):  # not blind after the first swap
        volume.write({"AGENTOS_SERVICE_TOKEN": "t", "OTHER": value})
        hints.wait()
        hints.drain(0.1)


def test_replaced_directory_is_rewatched_with_a_hint(tmp_path, watcher_of):
    target = tmp_path / "dir"
    target.mkdir()
    watcher, hints = watcher_of(str(target))
    os.rmdir(target)
    deadline = time.monotonic() + TIMEOUT
    while watcher.alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not watcher.alive()
    assert str(target) in watcher.ensure()
    target.mkdir()
    hints.drain(0.1)
    assert watcher.ensure() == {}
    assert watcher.alive()
    assert hints.wait().directory == str(target)


def test_missing_directory_is_a_problem_not_a_crash(tmp_path):
    hints = Hints()
    watcher = DirectoryWatcher([str(tmp_path / "absent")], hints)
    try:
        problems = watcher.start()
        assert "cannot watch" in problems[str(tmp_path / "absent")]
        assert not watcher.alive()
    finally:
        watcher.stop()


def test_failing_callback_does_not_kill_the_watch(tmp_path, watcher_of):
    calls = threading.Event()

    def boom(hint: Hint) -> None:
        calls.set()
        raise RuntimeError("callback bug")

    watcher = DirectoryWatcher([str(tmp_path)], boom)
    watcher.start()
    try:
        (tmp_path / "a").write_text("1")
        assert calls.wait(TIMEOUT)
        assert watcher.alive()
    finally:
        watcher.stop()
