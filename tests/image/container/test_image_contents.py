"""What the built image holds, and the one CLI command the runbook runs inside it.

The stand-in base (sidecar/build-image.sh) follows the official python image where these
checks depend on it: it ships no standard-library bytecode (the Dockerfile's compile step
must provide it) and no compiler, so each check fails if the Dockerfile stops doing its
part, not only if the base changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from image_lib import SECRETS, kubelet_dir, podman

from agentos_secrets.testing import AtomicWriter

TESTS = Path(__file__).resolve().parents[2]

# Runs inside the image as its user: imports what the sidecar imports, then reports.
SURVEY = r"""
import importlib.util, json, os, shutil, sys, sysconfig
from agentos_secrets.sidecar import main, loop, server, metrics, detect, logs, state, config
from agentos_secrets.sidecar.actions import build
from agentos_secrets.sidecar.config import parse
import httpx, watchdog.observers.inotify, prometheus_client
build(parse(["--watch", "/tmp", "--url", "http://127.0.0.1:1/r"], env={}))

def stale_or_missing(origin):
    # True when Python would not use the cached bytecode of origin as it is (PEP 552).
    cached = importlib.util.cache_from_source(origin)
    try:
        with open(cached, "rb") as handle:
            header = handle.read(16)
    except OSError:
        return True
    if header[:4] != importlib.util.MAGIC_NUMBER:
        return True
    if int.from_bytes(header[4:8], "little") & 1:  # hash-based: the hash of the source
        with open(origin, "rb") as handle:
            return header[8:16] != importlib.util.source_hash(handle.read())
    mtime, size = os.stat(origin).st_mtime, os.stat(origin).st_size
    return (int.from_bytes(header[8:12], "little") != int(mtime) & 0xFFFFFFFF
            or int.from_bytes(header[12:16], "little") != size & 0xFFFFFFFF)

no_bytecode = sorted(
    m.__spec__.origin for m in list(sys.modules.values())
    if getattr(m, "__spec__", None) and (m.__spec__.origin or "").endswith(".py")
    and stale_or_missing(m.__spec__.origin)
)
compilers = sorted(
    name for name in ("cc", "gcc", "c++", "g++", "clang", "tcc", "ld", "as", "make")
    if shutil.which(name)
)
found = {"git": [], "pip_cache": [], "test_data": []}
test_names = set(json.loads(sys.argv[1]))  # every file name in the repository's tests/
for top in ("/bin", "/etc", "/home", "/opt", "/root", "/srv", "/tmp", "/usr", "/var", "/src",
            "/wheelhouse"):
    for dirpath, dirnames, filenames in os.walk(top, onerror=lambda e: None):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if name == ".git":
                found["git"].append(path)
            if name == "pip" and os.path.basename(dirpath) == ".cache":
                found["pip_cache"].append(path)
        found["test_data"] += [os.path.join(dirpath, n) for n in filenames if n in test_names]
print(json.dumps({
    "no_bytecode": no_bytecode,
    "compilers": compilers,
    "pip_in_venv": importlib.util.find_spec("pip") is not None,
    "src_or_wheels": [p for p in ("/src", "/wheelhouse") if os.path.exists(p)],
    "stdlib": sysconfig.get_paths()["stdlib"],
    "prefix": sys.prefix,
    "dont_write_bytecode": sys.dont_write_bytecode,
    **found,
}))
"""


def test_image_config_is_what_the_manifests_expect(image):
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["agentos-secrets", "sidecar"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["AGENTOS_SIDECAR_LISTEN"] == "0.0.0.0:9095"
    assert inspected["Healthcheck"]["Test"] == ["CMD", "python", "/opt/sidecar/healthcheck.py"]


def test_image_holds_no_compiler_pip_cache_test_data_or_git(containers):
    ours = {p.name for p in TESTS.rglob("*") if p.is_file() and p.name != "__init__.py"}
    ours -= {"README.md", "conftest.py"}  # names too common to be ours alone
    result = containers.one_shot("python", "-c", SURVEY, json.dumps(sorted(ours)))
    assert result.returncode == 0, result.stderr
    survey = json.loads(result.stdout)
    assert survey["prefix"] == "/opt/sidecar", "the venv's python is first on PATH"
    assert survey["dont_write_bytecode"] is True
    assert survey["no_bytecode"] == [], "compiled at build time, stdlib included"
    assert survey["compilers"] == []
    assert survey["pip_in_venv"] is False, "pip left the runtime venv"
    assert survey["pip_cache"] == []
    assert survey["git"] == []
    assert survey["test_data"] == []
    assert survey["src_or_wheels"] == [], "the build stage's inputs stay in the build stage"


def test_fingerprint_inside_the_image_matches_the_host(containers, tmp_path, canary):
    volume = kubelet_dir(tmp_path / "secrets")
    AtomicWriter(volume).write({"AGENTOS_FED_SHARED_SECRET": canary.value})
    argv = ["fingerprint", "AGENTOS_FED_SHARED_SECRET", "--secret-dir", SECRETS]
    inside = containers.one_shot(
        "agentos-secrets", *argv, volumes=[f"{volume}:{SECRETS}:ro"]
    )
    assert inside.returncode == 0, inside.stderr
    host_argv = [*argv[:-1], str(volume)]
    host = subprocess.run(
        [sys.executable, "-m", "agentos_secrets", *host_argv],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert inside.stdout.startswith("AGENTOS_FED_SHARED_SECRET fp1:")
    assert inside.stdout == host.stdout, "the runbook compares these across nodes"
    canary.assert_absent(inside.stdout, inside.stderr)
