"""``agentos-secrets fingerprint`` and ``agentos-secrets explain``, run as real processes.

Operators compare fingerprints across nodes and ask where a value comes from; neither
command may ever print the value, whatever goes wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentos_secrets import Secret
from agentos_secrets.testing import AtomicWriter

NAME = "AGENTOS_SERVICE_TOKEN"


def run(args: list[str], env: dict[str, str], canary) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENTOS_") and k != "CREDENTIALS_DIRECTORY"
    }
    proc = subprocess.run(
        [sys.executable, "-m", "agentos_secrets", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    canary.assert_absent(proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def token_file(tmp_path: Path, canary) -> str:
    path = tmp_path / "token"
    path.write_text(canary.value + "\n")
    os.chmod(path, 0o600)
    return str(path)


def test_fingerprint_prints_the_safe_fingerprint(token_file: str, canary) -> None:
    proc = run(["fingerprint", NAME], {f"{NAME}_FILE": token_file}, canary)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{NAME} {Secret(canary.value).fingerprint()}\n"


def test_fingerprint_honours_the_extra_salt(token_file: str, canary) -> None:
    env = {f"{NAME}_FILE": token_file}
    plain = run(["fingerprint", NAME], env, canary).stdout
    salted = run(
        ["fingerprint", NAME], {**env, "AGENTOS_SECRETS_FINGERPRINT_SALT": "node-pair-1"}, canary
    ).stdout
    assert plain.split()[0] == salted.split()[0] == NAME
    assert plain != salted


def test_fingerprint_from_a_secret_dir(tmp_path: Path, canary) -> None:
    volume = tmp_path / "secrets"
    AtomicWriter(volume).write({NAME: canary.value, "AGENTOS_SIGNING_KEY": "k"})
    args = ["fingerprint", "--secret-dir", str(volume), NAME, "AGENTOS_SIGNING_KEY"]
    proc = run(args, {}, canary)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [
        f"{NAME} {Secret(canary.value).fingerprint()}",
        f"AGENTOS_SIGNING_KEY {Secret('k').fingerprint()}",
    ]


def test_fingerprint_missing_and_broken_exit_2(tmp_path: Path, canary) -> None:
    proc = run(["fingerprint", NAME], {}, canary)
    assert proc.returncode == 2
    assert f"secret {NAME} is required but missing" in proc.stderr
    bad = tmp_path / "bad"
    bad.write_text(canary.value)
    os.chmod(bad, 0o666)
    env = {f"{NAME}_FILE": str(bad), "AGENTOS_SIGNING_KEY": "ok"}
    proc = run(["fingerprint", NAME, "AGENTOS_SIGNING_KEY"], env, canary)
    assert proc.returncode == 2
    assert f"{NAME}_FILE ({bad})" in proc.stderr and "writable by group or others" in proc.stderr
    assert proc.stdout.startswith("AGENTOS_SIGNING_KEY fp1:")  # the others still print


def test_fingerprint_conflict_modes(token_file: str, canary) -> None:
    env = {NAME: "from-env", f"{NAME}_FILE": token_file}
    warn = run(["fingerprint", NAME], env, canary)
    assert warn.returncode == 0
    assert warn.stdout.split()[1] == Secret("from-env").fingerprint()
    assert f"{NAME}_FILE" in warn.stderr  # the one warning names both variables
    prefer = run(["fingerprint", "--on-conflict", "prefer-file", NAME], env, canary)
    assert prefer.stdout.split()[1] == Secret(canary.value).fingerprint()
    error = run(["fingerprint", "--on-conflict", "error", NAME], env, canary)
    assert error.returncode == 2 and "both set" in error.stderr


def test_explain_text(token_file: str, tmp_path: Path, canary) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / NAME).write_text("shadowed")
    proc = run(
        ["explain", "--secret-dir", str(tmp_path / "dir"), NAME],
        {f"{NAME}_FILE": token_file},
        canary,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{NAME}: from file {token_file} (from {NAME}_FILE)")
    assert "follows the file as it rotates" in proc.stdout
    assert Secret(canary.value).fingerprint() in proc.stdout
    assert f"shadows: file {tmp_path / 'dir' / NAME}" in proc.stdout


def test_explain_json(token_file: str, canary) -> None:
    env = {f"{NAME}_FILE": token_file}
    proc = run(["explain", "--json", NAME, "AGENTOS_SIGNING_KEY"], env, canary)
    assert proc.returncode == 1  # one of the two is missing
    found, missing = (json.loads(line) for line in proc.stdout.splitlines())
    assert found["found"] is True and found["source"] == "file" and found["path"] == token_file
    assert found["fingerprint"] == Secret(canary.value).fingerprint()
    assert missing == {
        "name": "AGENTOS_SIGNING_KEY",
        "found": False,
        "source": None,
        "variable": None,
        "path": None,
        "rotates": False,
        "shadowed": [],
        "conflict": None,
        "error": None,
        "fingerprint": None,
        "notes": [],
    }


def test_explain_reports_a_broken_source_and_exits_1(tmp_path: Path, canary) -> None:
    path = tmp_path / "bin"
    path.write_bytes(canary.value_bytes + b"\xff")
    os.chmod(path, 0o600)
    proc = run(["explain", "--json", NAME], {f"{NAME}_FILE": str(path)}, canary)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["found"] is False and report["path"] == str(path)
    assert "not valid UTF-8" in report["error"]


def test_explain_invalid_name_exits_2(canary) -> None:
    proc = run(["explain", "AGENTOS-SERVICE-TOKEN"], {}, canary)
    assert proc.returncode == 2
    assert "'AGENTOS-SERVICE-TOKEN' is not a valid variable name" in proc.stderr
