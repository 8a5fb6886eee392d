"""AS1xx beyond the variant library: the Loader's errors are the rules' errors, cases that
need generated files (too large, unreadable as root, real private keys), the dev profile,
this process's environment, and env files that cannot be evaluated (exit 2)."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentos_secrets import errors
from agentos_secrets.check.inputs import Environment
from agentos_secrets.check.rules_env import ERROR_RULES, check_environment


def test_every_loader_error_code_maps_to_a_rule():
    codes = {
        cls.code
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.SecretError)
    }
    assert codes <= set(ERROR_RULES), codes - set(ERROR_RULES)


def _env_file(tmp_path: Path, lines: dict[str, str]) -> Path:
    path = tmp_path / "checked.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    return path


def _secret(tmp_path: Path, name: str, data: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_too_large_file_is_as105(run_check, env_variant, tmp_path, canary):
    big = _secret(tmp_path, "big", canary.value_bytes * 4000)
    run = run_check("--env-file", str(env_variant(extra={"AGENTOS_SIGNING_KEY_FILE": str(big)})),
                    "--format", "json")
    assert run.rule_ids == {"AS105"}
    finding = run.json["findings"][0]
    assert finding["location"]["variable"] == "AGENTOS_SIGNING_KEY_FILE"
    assert finding["location"]["path"] == str(big)


def test_unreadable_file_is_as103(env_variant, tmp_path, canary):
    """As root a 000 file is still readable, so the check runs as a real process whose
    CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH were dropped (as the Loader's own test does)."""
    secret = _secret(tmp_path, "locked", canary.value_bytes, mode=0o000)
    env_file = env_variant(extra={"AGENTOS_SERVICE_TOKEN_FILE": str(secret)})
    os.chmod(env_file, 0o644)
    os.chmod(env_file.parent, 0o755)
    argv = [sys.executable, "-m", "agentos_secrets", "check", "--env-file", str(env_file),
            "--format", "json"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: no way to make a file unreadable")
        caps = "-dac_override,-dac_read_search"
        argv = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode == 2 and "setpriv" in proc.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {proc.stderr.strip()}")
    canary.assert_absent(proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert {f["ruleId"] for f in report["findings"]} == {"AS103"}
    assert proc.returncode == 1


def _pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _keys():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    rsa1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    rsa2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass-phrase"))
    return {
        "rsa-1024": (_pem(rsa1024), "AS115"),
        "rsa-2048": (_pem(rsa2048), None),
        "ec-p256": (_pem(ec.generate_private_key(ec.SECP256R1())), None),
        "ec-p192": (_pem(ec.generate_private_key(ec.SECP192R1())), "AS115"),
        "ed25519": (_pem(ed25519.Ed25519PrivateKey.generate()), None),
        "encrypted": (encrypted, "AS115"),
        "broken-pem": (b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n",
                       "AS115"),
        "hex-32-bytes": (os.urandom(32).hex().encode(), None),
        "hex-16-bytes": (os.urandom(16).hex().encode(), "AS115"),
    }


@pytest.mark.parametrize("kind", list(_keys()))
def test_signing_key_kinds(run_check, env_variant, tmp_path, kind):
    data, expected = _keys()[kind]
    path = _secret(tmp_path, "signing", data)
    run = run_check("--env-file", str(env_variant(extra={"AGENTOS_SIGNING_KEY_FILE": str(path)})),
                    "--format", "json")
    assert run.rule_ids == ({expected} if expected else set()), run.out


def test_dev_profile_skips_prod_only_rules(tmp_path):
    """A dev laptop with the example values and a plain env var is fine; a broken file
    is not, whatever the profile (the service would fail to start either way)."""
    env = Environment({
        "AGENTOS_PROFILE": "dev",
        "AGENTOS_SERVICE_TOKEN": "fake_service_token_localdev",
        "AGENTOS_DEFAULT_TENANT": "tnt_demo",
        "AGENTOS_SIGNING_KEY_FILE": str(tmp_path / "missing"),
    }, None, "dev")
    assert [f.rule.id for f in check_environment(env)] == ["AS101"]


def test_profile_flag_overrides_the_environment(run_check, env_variant):
    env_file = env_variant("default-tenant")
    assert run_check("--env-file", str(env_file), "--profile", "dev").code == 0
    assert run_check("--env-file", str(env_file)).code == 1


def test_checks_this_process_environment(run_check, monkeypatch, tmp_path, canary):
    for key in list(os.environ):
        if key.startswith("AGENTOS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AGENTOS_PROFILE", "prod")
    monkeypatch.setenv("AGENTOS_METRICS_REQUIRE_AUTH", "1")
    monkeypatch.setenv("AGENTOS_SERVICE_TOKEN", canary.value)
    run = run_check("--format", "json")
    # from a plain variable (AS109), 29 characters (AS111), the other two missing (AS108)
    assert run.rule_ids == {"AS108", "AS109", "AS111"}
    assert run.json["inputs"] == [{"kind": "environment", "source": "this process"}]
    canary.assert_absent(run.out, run.err)


def test_nothing_to_check_is_exit_2(run_check, monkeypatch):
    for key in list(os.environ):
        if key.startswith("AGENTOS_"):
            monkeypatch.delenv(key)
    run = run_check()
    assert run.code == 2 and "nothing to check" in run.err and run.out == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "no variables"),
        ("# only a comment\n\n", "no variables"),
        ("PATH=/usr/bin\nDATABASE_URL=x\n", "no AGENTOS_* variable"),  # the wrong file
        ("AGENTOS_PROFILE=prod\nthis line has no equals sign\n", "line 2: not a KEY=value"),
        ("AGENTOS_SERVICE_TOKEN='unterminated\n", "line 1: unterminated quote"),
    ],
)
def test_unusable_env_file_is_exit_2(run_check, tmp_path, content, expected):
    path = tmp_path / "bad.env"
    path.write_text(content)
    run = run_check("--env-file", str(path))
    assert run.code == 2 and expected in run.err and str(path) in run.err
    assert run.out == ""


def test_env_file_errors_never_quote_the_line(run_check, tmp_path, canary):
    path = tmp_path / "bad.env"
    path.write_text(f"AGENTOS_PROFILE=prod\n{canary.value}\nAGENTOS_SIGNING_KEY='{canary.value}\n")
    run = run_check("--env-file", str(path))
    assert run.code == 2
    canary.assert_absent(run.out, run.err)


def test_missing_env_file_is_exit_2(run_check, tmp_path):
    run = run_check("--env-file", str(tmp_path / "nope.env"))
    assert run.code == 2 and "nope.env" in run.err


def test_env_file_syntax(tmp_path):
    from agentos_secrets.check.inputs import load_env_file

    path = tmp_path / "x.env"
    path.write_text('export A=1\nB="two words"\nC=three # comment\nD=\'#kept\'\nE=\n')
    assert load_env_file(str(path)) == {"A": "1", "B": "two words", "C": "three",
                                        "D": "#kept", "E": ""}


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_peers_file_that_is_not_a_file_is_as123_without_hanging(
    run_check, env_variant, tmp_path, kind
):
    """A FIFO as AGENTOS_PEERS_FILE: a plain open() waits for a writer forever."""
    import signal

    peers = tmp_path / "peers"
    if kind == "fifo":
        os.mkfifo(peers, 0o600)
    else:
        peers.mkdir()
    env_file = env_variant(extra={"AGENTOS_SERVICE": "federation",
                                  "AGENTOS_PEERS_FILE": str(peers)})

    class Hung(Exception):  # not an OSError, which the check would report as a finding
        pass

    def hung(signum, frame):
        raise Hung("check blocked on the peers file")

    old = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 10.0)  # a watchdog, not a timing assertion
    try:
        run = run_check("--env-file", str(env_file), "--format", "json")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert run.rule_ids == {"AS123"} and run.code == 1
    expected = "not a regular file" if kind == "fifo" else "names a directory"
    assert expected in run.json["findings"][0]["message"]


def _chain_text(exc: BaseException) -> str:
    """Everything an exception chain carries, attributes included (a decode error's
    ``object``, a YAML mark's ``buffer``)."""
    texts: list[str] = []
    link: BaseException | None = exc
    while link is not None:
        texts += [str(link), repr(link.args), repr(vars(link))]
        for mark in ("problem_mark", "context_mark"):
            texts.append(str(getattr(getattr(link, mark, None), "buffer", "")))
        link = link.__cause__ or link.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("pure_yaml", [False, True])
def test_unusable_inputs_carry_no_content_in_the_exception_chain(
    tmp_path, canary, monkeypatch, pure_yaml
):
    """load_* are library functions too: the InputError must not keep the decode or
    YAML error (which hold the whole text) as its __context__."""
    import yaml

    from agentos_secrets.check.inputs import InputError, load_env_file, load_manifests

    if pure_yaml:  # the pure-Python loader's marks keep the whole buffer
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    bad_utf8 = tmp_path / "bad.env"
    bad_utf8.write_bytes(f"AGENTOS_SERVICE_TOKEN={canary.value}\n".encode() + b"\xff\n")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text(f"kind: Secret\nstringData: {{t: {canary.value}}}\nx: [\n")
    for load in (lambda: load_env_file(str(bad_utf8)), lambda: load_manifests(str(bad_utf8)),
                 lambda: load_manifests(str(bad_yaml))):
        with pytest.raises(InputError) as info:
            load()
        canary.assert_absent(_chain_text(info.value))
