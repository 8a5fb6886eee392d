"""Running the built sidecar image the way the manifests run it, through sidecar/podman.sh.

Every container here gets what deploy/k8s/components/secrets-sidecar/sidecar-patch.yaml
gives the sidecar: a read-only root file system (and no tmpfs podman would add on /tmp or
/run: Kubernetes adds none), the image's own numeric user (never overridden), every
capability dropped, no new privileges, the Secret volume mounted read-only at
``/etc/agentos/secrets``, the state directory as its own writable mount at
``/var/run/agentos-secrets``. Networking is the host's, and everything listens and
connects on 127.0.0.1 only: the container reaches the test's reload receiver and fake API
server on loopback as a sidecar reaches its app inside a pod.

podman's own settings (storage, runtime, cgroups, limits) live in sidecar/podman.sh only.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PODMAN = str(ROOT / "sidecar" / "podman.sh")
BUILD = str(ROOT / "sidecar" / "build-image.sh")

SECRETS = "/etc/agentos/secrets"
STATE_DIR = "/var/run/agentos-secrets"
STATE_FILE = f"{STATE_DIR}/state.json"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
NAME_PREFIX = "agentos-secrets-image-test-"


def why_not() -> str | None:
    """Why the container tests cannot run on this machine, or None when they can."""
    if os.geteuid() != 0:
        return "not root (podman with the vfs store and mmdebstrap run as root here)"
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (.ci/run installs them)"
    return None


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args[:2])} exited {result.returncode}: {result.stderr[-2000:]}"
        )
    return result


def build_image() -> str:
    """Run the same script as ``make image``; the image's name."""
    env = {**os.environ, "PYTHON": sys.executable}  # as make image: the venv's pip
    result = subprocess.run(
        [BUILD], capture_output=True, text=True, timeout=1500, check=False, cwd=ROOT, env=env
    )
    if result.returncode != 0:
        raise AssertionError(f"sidecar/build-image.sh failed:\n{result.stderr[-4000:]}")
    return result.stdout.strip().splitlines()[-1]


def remove_leftovers() -> None:
    """Remove containers that an interrupted test session left behind (ours by name)."""
    names = podman("ps", "--all", "--format", "{{.Names}}").stdout.split()
    mine = f"{NAME_PREFIX}{os.getpid()}-"
    stale = [n for n in names if n.startswith(NAME_PREFIX) and not n.startswith(mine)]
    if stale:
        podman("rm", "--force", "--time", "2", *stale, check=False, timeout=300)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kubelet_dir(path: Path) -> Path:
    """A host directory the container's user can read, as a kubelet volume is (0755)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def state_dir(path: Path) -> Path:
    """A host directory standing in for the emptyDir (the kubelet makes it 0777)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@dataclass
class Sidecar:
    """One running container of the image."""

    name: str
    port: int
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (host, container)

    def status(self, path: str, headers: dict[str, str] | None = None) -> int | None:
        try:
            return get(self.port, path, headers)[0]
        except OSError:
            return None

    def wait_started(self, timeout: float = 60) -> None:
        if not wait_for(lambda: self.status("/startupz") == 200, timeout, 0.1):
            raise AssertionError(f"/startupz never answered 200; logs:\n{self.logs()[-3000:]}")

    def start(self) -> None:
        podman("start", self.name, timeout=120)

    def pid(self) -> int:
        """The sidecar's pid on the host (the container's pid 1)."""
        return int(podman("inspect", "--format", "{{.State.Pid}}", self.name).stdout)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def log_records(self) -> list[dict]:
        records = []
        for line in self.logs().splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and "msg" in value:
                records.append(value)
        return records

    def stop(self) -> int:
        """SIGTERM (podman stop), then the container's exit code."""
        podman("stop", "--time", "15", self.name, timeout=60)
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout)

    def exec(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return podman("exec", *flags, self.name, *argv, check=False)


class Containers:
    """Starts containers of ``image`` and removes every one of them at the end."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.names: list[str] = []

    def run(
        self,
        secrets: Path,
        state: Path,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        mounts: Sequence[tuple[Path, str]] = (),
        read_only: bool = True,
        start: bool = True,
    ) -> Sidecar:
        """Start the sidecar (the image's entrypoint) watching ``secrets``; not waited for.

        ``start=False`` only creates the container (``Sidecar.start`` starts it), so that
        a start can be timed without the creation of its root file system.
        """
        name = f"{NAME_PREFIX}{os.getpid()}-{len(self.names)}"
        port = free_port()
        volumes = [(str(secrets), SECRETS, "ro"), (str(state), STATE_DIR, "rw")]
        volumes += [(str(host), target, "ro") for host, target in mounts]
        flags = [
            "--name", name, "--pull", "never",
            "--network", "host",
            "--cap-drop", "all", "--security-opt", "no-new-privileges",
        ]  # fmt: skip
        if read_only:
            flags += ["--read-only", "--read-only-tmpfs=false"]
        for host, target, mode in volumes:
            flags += ["--volume", f"{host}:{target}:{mode}"]
        environment = {
            "AGENTOS_SIDECAR_LISTEN": f"127.0.0.1:{port}",
            "AGENTOS_SIDECAR_WATCH": SECRETS,
            "AGENTOS_SIDECAR_STATE_FILE": STATE_FILE,
            **(env or {}),
        }
        for key, value in environment.items():
            flags += ["--env", f"{key}={value}"]
        self.names.append(name)
        if start:
            # The kubelet adds no /etc/passwd entry for runAsUser; `podman run` would, with
            # a writable root, and that write would not be the sidecar's. (`podman create`
            # has no such flag in podman 4.3: keep its containers read-only.)
            podman("run", "--detach", "--passwd=false", *flags, self.image, *args, timeout=180)
        else:
            assert read_only, "podman create would write /etc/passwd into a writable root"
            podman("create", *flags, self.image, *args, timeout=180)
        return Sidecar(name, port, [(h, t) for h, t, _ in volumes])

    def one_shot(self, entrypoint: str, *args: str, volumes: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``entrypoint args`` in a fresh container with the same restrictions, once."""
        flags = [
            "--rm", "--pull", "never", "--network", "none",
            "--read-only", "--read-only-tmpfs=false",
            "--cap-drop", "all", "--security-opt", "no-new-privileges",
            "--entrypoint", entrypoint,
        ]  # fmt: skip
        for volume in volumes:
            flags += ["--volume", volume]
        for key, value in (env or {}).items():
            flags += ["--env", f"{key}={value}"]
        return podman("run", *flags, self.image, *args, timeout=180, check=False)

    def remove_all(self) -> None:
        for name in self.names:
            podman("rm", "--force", "--time", "2", name, check=False, timeout=120)
        self.names.clear()
