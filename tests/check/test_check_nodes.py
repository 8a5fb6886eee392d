"""AS3xx: two federated nodes compare their shared secret by fingerprint, each through
the Loader, without either one revealing the secret. Node A runs the real
``agentos-secrets fingerprint`` process; node B runs ``check --expect-fingerprint``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NAME = "AGENTOS_FED_SHARED_SECRET"


def _node_a_fingerprint(secret_file: Path, canary, salt: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTOS_")}
    env[f"{NAME}_FILE"] = str(secret_file)
    if salt is not None:
        env["AGENTOS_SECRETS_FINGERPRINT_SALT"] = salt
    proc = subprocess.run([sys.executable, "-m", "agentos_secrets", "fingerprint", NAME],
                          capture_output=True, text=True, env=env, timeout=60, check=True)
    canary.assert_absent(proc.stdout, proc.stderr)
    name, fingerprint = proc.stdout.split()
    assert name == NAME and fingerprint.startswith("fp1:")
    return fingerprint


def _file(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content + "\n")
    path.chmod(0o600)
    return path


def test_same_secret_on_both_nodes_passes(run_check, env_variant, tmp_path, canary):
    shared = canary.value + "-and-enough-random-tail-Xq7Lz9"
    expected = _node_a_fingerprint(_file(tmp_path, "node-a", shared), canary)
    node_b = env_variant(extra={f"{NAME}_FILE": str(_file(tmp_path, "node-b", shared))})
    run = run_check("--env-file", str(node_b), "--expect-fingerprint", f"{NAME}={expected}",
                    "--format", "json")
    assert run.json["findings"] == [] and run.code == 0
    assert {"kind": "fingerprints", "source": NAME} in run.json["inputs"]


@pytest.mark.parametrize("checker_salt", [None, "the-checkers-own"])
def test_env_file_salt_is_the_nodes_not_the_checkers(
    run_check, env_variant, tmp_path, canary, monkeypatch, checker_salt
):
    """Node B's fingerprint is computed with node B's salt (its env file), whatever the
    process running the check has."""
    if checker_salt is None:
        monkeypatch.delenv("AGENTOS_SECRETS_FINGERPRINT_SALT", raising=False)
    else:
        monkeypatch.setenv("AGENTOS_SECRETS_FINGERPRINT_SALT", checker_salt)
    shared = canary.value + "-and-enough-random-tail-Xq7Lz9"
    expected = _node_a_fingerprint(_file(tmp_path, "node-a", shared), canary, "pair-1")
    node_b = env_variant(extra={f"{NAME}_FILE": str(_file(tmp_path, "node-b", shared)),
                                "AGENTOS_SECRETS_FINGERPRINT_SALT": "pair-1"})
    run = run_check("--env-file", str(node_b), "--expect-fingerprint", f"{NAME}={expected}",
                    "--format", "json")
    assert run.json["findings"] == [] and run.code == 0


def test_different_secret_is_as301(run_check, env_variant, tmp_path, canary):
    expected = _node_a_fingerprint(_file(tmp_path, "node-a", canary.value + "-A-Xq7Lz9Wp2"),
                                   canary)
    node_b = env_variant(extra={
        f"{NAME}_FILE": str(_file(tmp_path, "node-b", canary.value + "-B-Xq7Lz9Wp2"))})
    for fmt in ("text", "json", "sarif", "github", "junit"):
        run = run_check("--env-file", str(node_b), "--expect-fingerprint",
                        f"{NAME}={expected}", "--format", fmt)
        assert run.code == 1
        canary.assert_absent(run.out, run.err)
    run = run_check("--env-file", str(node_b), "--expect-fingerprint", f"{NAME}={expected}",
                    "--format", "json")
    (finding,) = run.json["findings"]
    assert finding["ruleId"] == "AS301" and expected in finding["message"]


def test_unresolvable_secret_is_as302(run_check, env_variant):
    node_b = env_variant("file-missing")  # the signing key's file is missing
    run = run_check("--env-file", str(node_b), "--format", "json",
                    "--expect-fingerprint", "AGENTOS_SIGNING_KEY=fp1:0123456789abcdef")
    assert run.rule_ids == {"AS101", "AS302"}


def test_fingerprint_only_needs_no_other_agentos_variable(run_check, monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("AGENTOS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv(f"{NAME}_FILE", str(_file(tmp_path, "s", "x" * 40)))
    from agentos_secrets import fingerprint_bytes

    fingerprint = fingerprint_bytes(b"x" * 40)
    run = run_check("--no-env", "--expect-fingerprint", f"{NAME}={fingerprint}")
    assert run.code == 2  # --no-env contradicts a comparison made from the environment
    run = run_check("--expect-fingerprint", f"{NAME}={fingerprint}", "--format", "json")
    assert run.code == 0, run.out


@pytest.mark.parametrize("value", [f"{NAME}", f"{NAME}=abc", f"{NAME}=fp1:xyz",
                                   "=fp1:0123456789abcdef", "bad name=fp1:0123456789abcdef"])
def test_malformed_expectation_is_exit_2(run_check, env_variant, value):
    run = run_check("--env-file", str(env_variant()), "--expect-fingerprint", value)
    assert run.code == 2 and "--expect-fingerprint" in run.err
