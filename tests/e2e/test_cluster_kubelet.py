"""The harness's kubelet (examples/cluster.py): delays, the latest object, never-sync mode.

The Secret source here is a dict guarded by a lock, standing in for the API server; the
volume is real and read back through the Loader, as a service reads it.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from agentos_secrets import Loader
from examples.cluster import Kubelet

pytestmark = pytest.mark.e2e


class Store:
    """A Secret with a resourceVersion, changed by the test."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.lock = threading.Lock()
        self.version = 1
        self.data = dict(data)
        self.present = True

    def put(self, data: dict[str, bytes]) -> None:
        with self.lock:
            self.version += 1
            self.data = dict(data)

    def __call__(self) -> tuple[str, dict[str, bytes]] | None:
        with self.lock:
            return (str(self.version), dict(self.data)) if self.present else None


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _value(volume: str, name: str = "TOKEN") -> str | None:
    secret = Loader(env={}, secret_dirs=[volume]).get(name)
    return None if secret is None else secret.reveal()


def test_mount_then_each_change_after_its_own_drawn_delay(tmp_path, canary):
    store = Store({"TOKEN": canary.value_bytes})
    kubelet = Kubelet(
        "pod-a", str(tmp_path / "v"), store, delay=(0.2, 0.4), rng=random.Random(7)
    )
    kubelet.mount()
    assert _value(str(tmp_path / "v")) == canary.value
    kubelet.start()
    try:
        store.put({"TOKEN": b"second"})
        # the version is recorded just after the volume's rename: wait for the record
        assert _wait(lambda: kubelet.mounted_version == "2")
        assert _value(str(tmp_path / "v")) == "second"
    finally:
        kubelet.stop()
    first, second = kubelet.projections
    assert (first.resource_version, first.delay) == ("1", 0.0)
    assert second.resource_version == "2"
    assert 0.2 <= second.delay <= 0.4
    assert second.written_at - second.seen_at >= second.delay  # never early
    assert not kubelet.alive


def test_the_same_seed_draws_the_same_delays(tmp_path):
    delays = []
    for run in range(2):
        store = Store({"TOKEN": b"one"})
        kubelet = Kubelet(
            "pod", str(tmp_path / f"v{run}"), store, delay=(0.05, 0.3), rng=random.Random(42)
        )
        kubelet.mount()
        kubelet.start()
        try:
            for i in range(3):
                store.put({"TOKEN": f"value-{i}".encode()})
                assert _wait(lambda i=i, k=kubelet: k.mounted_version == str(i + 2))
        finally:
            kubelet.stop()
        delays.append([p.delay for p in kubelet.projections])
    assert delays[0] == delays[1]
    assert len(set(delays[0][1:])) == 3


def test_a_change_during_the_delay_projects_the_latest_object_once(tmp_path):
    store = Store({"TOKEN": b"one", "OTHER": b"x"})
    volume = str(tmp_path / "v")
    kubelet = Kubelet("pod", volume, store, delay=(0.5, 0.5), rng=random.Random(1))
    kubelet.mount()
    kubelet.start()
    try:
        store.put({"TOKEN": b"two", "OTHER": b"x"})
        time.sleep(0.15)  # inside the 0.5 s delay
        store.put({"TOKEN": b"three"})
        assert _wait(lambda: kubelet.mounted_version == "3")
    finally:
        kubelet.stop()
    assert _value(volume) == "three"
    assert _value(volume, "OTHER") is None, "a key removed from the Secret leaves the volume"
    assert [p.resource_version for p in kubelet.projections] == ["1", "3"]


def test_a_kubelet_that_never_syncs_keeps_the_first_mount(tmp_path):
    store = Store({"TOKEN": b"one"})
    volume = str(tmp_path / "v")
    kubelet = Kubelet(
        "pod", volume, store, delay=(0.0, 0.05), rng=random.Random(1), syncs=False
    )
    kubelet.mount()
    kubelet.start()
    try:
        store.put({"TOKEN": b"two"})
        time.sleep(0.5)  # ten times the longest delay
        assert _value(volume) == "one"
        kubelet.syncs = True  # the node reconnects
        assert _wait(lambda: _value(volume) == "two")
    finally:
        kubelet.stop()


def test_a_deleted_secret_keeps_what_is_mounted(tmp_path):
    store = Store({"TOKEN": b"one"})
    volume = str(tmp_path / "v")
    kubelet = Kubelet("pod", volume, store, delay=(0.0, 0.0), rng=random.Random(1))
    kubelet.mount()
    kubelet.start()
    try:
        store.present = False
        time.sleep(0.3)
        assert _value(volume) == "one"
    finally:
        kubelet.stop()
    with pytest.raises(RuntimeError, match="pod: the Secret does not exist"):
        Kubelet("pod", str(tmp_path / "w"), store, delay=(0, 0), rng=random.Random()).mount()


def test_delay_bounds_are_checked(tmp_path):
    with pytest.raises(ValueError, match="low <= high"):
        Kubelet("p", str(tmp_path), Store({}), delay=(2.0, 1.0), rng=random.Random())
