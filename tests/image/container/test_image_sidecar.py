"""The built image, run as the manifests run it (tests/image/image_lib.py says how).

What issue 10 asks of the container: kubelet-style rotations written into the mounted
volume each cause exactly one reload; a restarted container with the same state file does
nothing, one with changed content exactly one; the probes and /metrics (with and without
the service token) answer from outside; the image's HEALTHCHECK passes; the ``rollout``
action works from inside against the fake API server with a mounted token and CA; and the
container writes nothing outside its state directory.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from fake_apiserver import FakeApiServer, make_tls
from image_lib import (
    SA_DIR,
    SECRETS,
    STATE_DIR,
    STATE_FILE,
    get,
    kubelet_dir,
    podman,
    state_dir,
    wait_for,
)

from agentos_secrets.testing import AtomicWriter

KEY = "AGENTOS_SERVICE_TOKEN"
# Fast but faithful: a short debounce, and no storm breaker between the test's rotations.
FAST = ["--debounce", "0.2", "--max-wait", "2", "--min-interval", "0"]
QUIET_S = 1.5  # longer than debounce + max-wait margin: an extra action would have come


def _applied(state: Path) -> str | None:
    try:
        return json.loads((state / "state.json").read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None


def _status_fields(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def test_each_rotation_is_one_reload(containers, receiver, tmp_path, canary):
    volume = kubelet_dir(tmp_path / "secrets")
    writer = AtomicWriter(volume)
    writer.write({KEY: canary.value})
    state = state_dir(tmp_path / "state")
    sidecar = containers.run(volume, state, ["--url", receiver.url("/reload"), *FAST])
    sidecar.wait_started()

    # The restrictions really apply to the process (read from the host's /proc).
    fields = _status_fields(sidecar.pid())
    assert fields["Uid"].split() == ["10001"] * 4, "the image's numeric user"
    assert fields["Gid"].split() == ["10001"] * 4
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"] == "1"

    baseline = _applied(state)
    assert baseline is not None and receiver.count("/reload") == 0
    for i in range(1, 4):
        writer.write({KEY: f"{canary.value}-{i}"})
        assert receiver.wait_count("/reload", i, timeout=20) is not None, f"rotation {i}"
        previous = baseline
        assert wait_for(lambda p=previous: _applied(state) not in (None, p), 10)
        baseline = _applied(state)
    # Noise the kubelet and the app make: a touch, a chmod, an identical write.
    data = volume / KEY
    os.utime(data)
    os.chmod(os.path.realpath(data), 0o644)
    writer.write({KEY: f"{canary.value}-3"})
    time.sleep(QUIET_S)
    assert receiver.count("/reload") == 3, "exactly one reload per rotation"
    done = [r for r in sidecar.log_records() if r["msg"] == "action succeeded"]
    assert len(done) == 3
    assert done[-1]["fingerprint"] == _applied(state)
    canary.assert_absent(sidecar.logs())
    assert sidecar.stop() == 0, "SIGTERM stops it cleanly"


def test_restart_with_the_same_state_does_nothing_and_with_new_content_one(
    containers, receiver, tmp_path, canary
):
    volume = kubelet_dir(tmp_path / "secrets")
    writer = AtomicWriter(volume)
    writer.write({KEY: canary.value})
    state = state_dir(tmp_path / "state")
    args = ["--url", receiver.url("/reload"), *FAST]

    first = containers.run(volume, state, args)
    first.wait_started()
    assert wait_for(lambda: _applied(state) is not None, 10), "baseline saved"
    assert first.stop() == 0

    same = containers.run(volume, state, args)
    same.wait_started()
    time.sleep(QUIET_S)
    assert receiver.count("/reload") == 0, "same content, same state file: nothing"
    assert same.stop() == 0

    before = _applied(state)
    writer.write({KEY: canary.value + "-while-down"})
    changed = containers.run(volume, state, args)
    changed.wait_started()
    assert receiver.wait_count("/reload", 1, timeout=20) is not None
    time.sleep(QUIET_S)
    assert receiver.count("/reload") == 1, "content changed while down: exactly one"
    assert _applied(state) not in (None, before)
    canary.assert_absent(first.logs(), same.logs(), changed.logs())


def test_probes_metrics_and_healthcheck_from_outside(containers, receiver, tmp_path, canary):
    volume = kubelet_dir(tmp_path / "secrets")
    AtomicWriter(volume).write({KEY: canary.value})
    sidecar = containers.run(
        volume,
        state_dir(tmp_path / "state"),
        ["--url", receiver.url("/reload"), *FAST],
        env={
            "AGENTOS_METRICS_REQUIRE_AUTH": "1",
            "AGENTOS_SERVICE_TOKEN_FILE": f"/etc/agentos/secrets/{KEY}",
        },
    )
    sidecar.wait_started()
    for path in ("/healthz", "/startupz", "/readyz"):
        assert sidecar.status(path) == 200, path
    assert sidecar.status("/metrics") == 401, "no token"
    assert sidecar.status("/metrics", {"Authorization": "Bearer wrong-token"}) == 401
    status, body = get(sidecar.port, "/metrics", {"Authorization": f"Bearer {canary.value}"})
    assert status == 200
    assert b"agentos_secrets_sidecar_watches_up 1.0" in body
    canary.assert_absent(body)

    # The image's own HEALTHCHECK, run by podman inside the container.
    check = podman("healthcheck", "run", sidecar.name, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # ... and it can fail: nothing answers on the address it is told to ask.
    down = sidecar.exec("python", "/opt/sidecar/healthcheck.py",
                        env={"AGENTOS_SIDECAR_LISTEN": "127.0.0.1:1"})  # fmt: skip
    assert down.returncode == 1
    canary.assert_absent(sidecar.logs())


NAMESPACE = "agentos"
DEPLOYMENT = "agentos-model-policy"
SA_TOKEN = "sa-token-image-3c9e"


def test_rollout_from_inside_the_container(containers, tmp_path, canary):
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    tls = make_tls(str(tls_dir))
    account = kubelet_dir(tmp_path / "serviceaccount")
    AtomicWriter(account, mode=0o444).write(
        {"token": SA_TOKEN, "namespace": NAMESPACE, "ca.crt": Path(tls.ca).read_bytes()}
    )
    volume = kubelet_dir(tmp_path / "secrets")
    writer = AtomicWriter(volume)
    writer.write({KEY: canary.value})
    state = state_dir(tmp_path / "state")
    with FakeApiServer(tls, token=SA_TOKEN) as api:
        sidecar = containers.run(
            volume,
            state,
            ["--action", "rollout", "--deployment", DEPLOYMENT, "--namespace", NAMESPACE,
             "--api-server", api.url, "--timeout", "3", *FAST],
            mounts=[(account, SA_DIR)],
        )  # fmt: skip
        sidecar.wait_started()
        assert wait_for(lambda: sidecar.status("/readyz") == 200, 10), "token and CA readable"
        assert api.requests == [], "a baseline at start-up acts on nothing"

        writer.write({KEY: canary.value + "-rotated"})
        assert wait_for(lambda: api.rollouts == 1, 20), sidecar.logs()[-2000:]
        assert wait_for(lambda: _applied(state) == api.annotation(NAMESPACE, DEPLOYMENT), 10)
        time.sleep(QUIET_S)
        assert api.rollouts == 1
        for request in api.requests:
            canary.assert_absent(request)
        canary.assert_absent(sidecar.logs())


def test_writes_nothing_outside_the_state_directory(containers, receiver, tmp_path, canary):
    # A writable root this time, so that any write would land and show in `podman diff`.
    volume = kubelet_dir(tmp_path / "secrets")
    writer = AtomicWriter(volume)
    writer.write({KEY: canary.value})
    state = state_dir(tmp_path / "state")
    sidecar = containers.run(
        volume, state, ["--url", receiver.url("/reload"), *FAST], read_only=False
    )
    sidecar.wait_started()
    writer.write({KEY: canary.value + "-rotated"})
    assert receiver.wait_count("/reload", 1, timeout=20) is not None
    assert sidecar.status("/metrics") == 200
    assert sidecar.stop() == 0
    changed = {line.partition(" ")[2] for line in podman("diff", sidecar.name).stdout.splitlines()}
    # podman creates the mount points (and so changes their parents) before the start;
    # /var/run is a symbolic link to /run in Debian.
    allowed = set()
    for _host, target in sidecar.mounts:
        path = Path(target.replace("/var/run/", "/run/", 1))
        allowed |= {str(path), *(str(p) for p in path.parents)}
    assert changed <= allowed, f"written outside the state directory: {changed - allowed}"
    assert sorted(p.name for p in state.iterdir()) == ["state.json"]


def test_the_tests_mount_where_the_manifests_do():
    manifest = (
        Path(__file__).resolve().parents[3]
        / "deploy/k8s/components/secrets-sidecar/sidecar-patch.yaml"
    ).read_text()
    for path in (SECRETS, STATE_DIR, SA_DIR):
        assert f"mountPath: {path}" in manifest
    assert f"value: {STATE_FILE}" in manifest
    assert "runAsUser: 10001" in manifest and "readOnlyRootFilesystem: true" in manifest
