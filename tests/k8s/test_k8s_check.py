"""Our own pre-deploy check passes on every rendering we ship, the way a user runs it:
``agentos-secrets check --no-env --manifests deploy/k8s/<dir>`` (a kustomization dir,
rendered by the check itself), local-dev with profile dev, everything else with prod.
A manifest change that the check would flag breaks this test, not a user's deploy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from k8s_render import K8S, REPO, TARGETS, Target, kubectl


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_agentos_secrets_check_passes(target: Target) -> None:
    # The check renders the kustomization itself; pin it to the same kubectl as ours.
    env = {**os.environ, "AGENTOS_SECRETS_KUBECTL": str(kubectl())}
    proc = subprocess.run(
        [sys.executable, "-m", "agentos_secrets", "check", "--no-env",
         "--profile", target.profile, "--format", "json",
         "--manifests", str(K8S / target.path)],
        capture_output=True, text=True, check=False, cwd=REPO, env=env, timeout=120,
    )
    assert proc.stdout, proc.stderr
    report = json.loads(proc.stdout)
    assert report["findings"] == [], json.dumps(report["findings"], indent=2)
    assert proc.returncode == 0 and report["summary"]["passed"] is True
