"""``rotate`` against real sidecar processes behind the fake API server's ``pods/proxy``.

Three "pods": each a real ``agentos-secrets sidecar`` (``--action none``, metrics auth on,
so ``/status`` needs the token) on a kubelet-style volume, and a kubelet loop that
projects the fake API's Secret into it with ``AtomicWriter`` after a random delay. The
fake strips ``Authorization`` before proxying, as kube-apiserver does, so this also
proves the ``X-AgentOS-Token`` path end to end.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from rotate_helpers import FAST, KEY, NS, OLD, SECRET, events, rotate

from agentos_secrets.testing import AtomicWriter

pytestmark = pytest.mark.e2e

SIDECAR_FAST = ["--debounce", "0.05", "--max-wait", "1", "--min-interval", "0",
                "--resync", "0.5", "--backoff-initial", "0.05", "--backoff-max", "0.4",
                "--timeout", "2"]


class Pod:
    def __init__(self, api, tmp_path, name: str) -> None:
        self.api = api
        self.name = name
        self.volume = AtomicWriter(tmp_path / name / "secrets")
        self.volume.write(dict(api.secret_data(NS, SECRET)))
        self.log = open(tmp_path / name / "sidecar.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentos_secrets", "sidecar", "--watch",
             self.volume.target_dir, "--action", "none", "--listen", "127.0.0.1:0",
             "--state-file", str(tmp_path / name / "state.json"), *SIDECAR_FAST],
            stdout=self.log, stderr=self.log,
            env={**os.environ, "AGENTOS_METRICS_REQUIRE_AUTH": "1", "POD_NAME": name,
                 "AGENTOS_SERVICE_TOKEN_FILE": os.path.join(self.volume.target_dir, KEY)},
        )
        self.port = self._wait_listen(tmp_path / name / "sidecar.log")
        api.add_pod(NS, {
            "metadata": {"name": name, "labels": {"app": "agentos-model-policy"}},
            "spec": {
                "initContainers": [{"name": "secrets-sidecar", "restartPolicy": "Always",
                                    "ports": [{"name": "metrics", "containerPort": 9095}]}],
                "containers": [{"name": "agentos"}],
                "volumes": [{"name": "s", "secret": {"secretName": SECRET}}],
            },
        }, proxy={9095: ("127.0.0.1", self.port)})
        self.stop = threading.Event()
        self.kubelet = threading.Thread(target=self._kubelet, daemon=True)
        self.kubelet.start()

    def _wait_listen(self, log) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()
            for line in log.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("msg") == "sidecar starting" and entry.get("listen"):
                    return int(entry["listen"].rsplit(":", 1)[1])
            time.sleep(0.02)
        raise AssertionError("the sidecar did not listen")

    def _kubelet(self) -> None:
        """Project the Secret like the kubelet: on its own schedule, atomically."""
        projected = None
        while not self.stop.is_set():
            data = self.api.secret_data(NS, SECRET)
            if data != projected:
                time.sleep(random.uniform(0.05, 0.4))  # the sync period, per pod
                data = self.api.secret_data(NS, SECRET)
                self.volume.write(dict(data))
                projected = data
            self.stop.wait(0.05)

    def close(self) -> None:
        self.stop.set()
        self.kubelet.join(5)
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture
def pods(api, tmp_path) -> Iterator[list[Pod]]:
    started: list[Pod] = []
    try:
        for index in range(3):
            (tmp_path / f"pod-{index}").mkdir()
            started.append(Pod(api, tmp_path, f"pod-{index}"))
        yield started
    finally:
        for pod in started:
            pod.close()


def test_rotation_through_real_sidecars_and_the_pod_proxy(api, kubeconfig, pods, tmp_path,
                                                          canary):
    value = tmp_path / "new"
    value.write_bytes(canary.value_bytes)
    value.chmod(0o600)
    args = [a if a != "5" else "30" for a in FAST]
    code, out, err = rotate(kubeconfig, KEY, "--from-file", str(value), "--output", "json",
                            *args)
    assert code == 0, out + err
    assert api.secret_data(NS, SECRET)[KEY] == canary.value_bytes
    passed = [e for e in events(out) if e["event"] == "gate-passed"]
    assert [e["pods"] for e in passed] == [3, 3, 3]
    proxied = [r for r in api.requests if "/proxy/status" in r.path]
    assert proxied and all(r.status in (200, 401) for r in proxied)
    assert sum(1 for r in proxied if r.status == 200) >= 9
    for pod in pods:
        assert pod.proc.poll() is None
        log = (tmp_path / pod.name / "sidecar.log").read_bytes()
        canary.assert_absent(log)
    canary.assert_absent(out, err)
    assert OLD not in out.encode() + err.encode()
