"""Units of ``rotate``: values, the rate limiter, /status and metrics parsing, owners,
commands, output modes. No timed assertions: the limiter runs on a fake clock."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import pytest

from agentos_secrets.rotate.commands import parse_command, run_command
from agentos_secrets.rotate.discover import SecretObject, external_owner
from agentos_secrets.rotate.kube import RateLimiter
from agentos_secrets.rotate.progress import Reporter
from agentos_secrets.rotate.status import parse_status, parse_verify_counters
from agentos_secrets.rotate.values import ValueInputError, generate, read_value


def test_generate_default_and_alphabets():
    value = generate().reveal()
    assert len(value) == 43
    hexed = generate(alphabet="hex").reveal()
    assert len(hexed) == 64 and set(hexed) <= set("0123456789abcdef")
    custom = generate(length=50, alphabet="abcdefgh").reveal()
    assert len(custom) == 50 and set(custom) <= set("abcdefgh")
    assert len({generate().reveal() for _ in range(50)}) == 50
    for kwargs in ({"alphabet": "aa"}, {"alphabet": "a b"}, {"length": 0},
                   {"length": 10, "alphabet": "hex"}):
        with pytest.raises(ValueInputError):
            generate(**kwargs)
    assert repr(generate()) == "Secret(********** name='generated')"


def test_read_value_validates_like_the_loader(tmp_path, canary):
    path = tmp_path / "v"
    path.write_bytes(canary.value_bytes + b"\n")
    path.chmod(0o600)
    assert read_value(str(path)).reveal_bytes() == canary.value_bytes
    path.chmod(0o666)
    with pytest.raises(ValueInputError) as caught:
        read_value(str(path))
    assert "writable by group or others" in str(caught.value)
    path.chmod(0o600)
    path.write_bytes(b"\xff" + canary.value_bytes)
    with pytest.raises(ValueInputError) as caught:
        read_value(str(path))
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    canary.assert_absent(str(caught.value))
    with pytest.raises(ValueInputError):
        read_value(str(tmp_path / "missing"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_is_a_token_bucket():
    fake = FakeClock()
    limiter = RateLimiter(5, 10, clock=fake.clock, sleep=fake.sleep)
    for _ in range(10):
        limiter.acquire()
    assert fake.now == 0  # the burst is free
    for _ in range(50):
        limiter.acquire()
    assert math.isclose(fake.now, 10.0, abs_tol=1e-6)  # then exactly qps
    limiter.pause(3)
    before = fake.now
    limiter.acquire()
    assert fake.now - before >= 3  # Retry-After pauses everyone


def test_rate_limiter_refuses_nonsense():
    with pytest.raises(ValueError):
        RateLimiter(0, 10)
    with pytest.raises(ValueError):
        RateLimiter(5, 0)


def test_parse_status_type_checks_everything():
    good = {"version": 1, "action": "rollout", "ready": True, "keys": [
        {"name": "K", "mounted": "fp1:0123456789abcdef", "applied": None, "pending": True},
        {"name": "K", "mounted": "fp1:ffffffffffffffff"}],
        "last_action": {"result": "failed", "error": "x" * 1000}}
    status = parse_status(json.dumps(good).encode())
    assert status.error is None and status.keys["K"].mounted == "fp1:0123456789abcdef"
    assert status.keys["K"].pending is True and len(status.action_error) == 200
    for bad in (b"[]", b'{"version": 2, "keys": []}', b'{"version": 1}', b"\x00",
                b'{"version": 1, "keys": [null]}'):
        assert parse_status(bad).error is not None
    odd = parse_status(b'{"version": 1, "keys": [{"name": "K", "mounted": "secret"}]}')
    assert odd.keys["K"].mounted is None  # only fp1: fingerprints are taken


def test_parse_verify_counters():
    text = (b'agentos_secrets_verify_total{name="K",result="previous"} 4\n'
            b'agentos_secrets_verify_total{name="K",result="current"} 9\n'
            b'agentos_secrets_verify_total{name="OTHER",result="previous"} 100\n'
            b'agentos_secrets_verify_last_previous_timestamp_seconds{name="K"} 1700000000\n')
    counters = parse_verify_counters(text, "K")
    assert counters.previous_total == 4 and counters.last_previous == 1700000000
    assert parse_verify_counters(b"", "K").previous_total == 0
    assert isinstance(parse_verify_counters(b"{{{ not prometheus", "K"), str)
    assert isinstance(parse_verify_counters(b"\xff", "K"), str)


@pytest.mark.parametrize(
    ("meta", "who"),
    [
        ({"ownerReferences": [{"kind": "ExternalSecret", "name": "es"}]},
         "the External Secrets Operator (ExternalSecret es)"),
        ({"ownerReferences": [{"kind": "SecretProviderClassPodStatus", "name": "p"}]},
         "the Secrets Store CSI driver's secret sync (p)"),
        ({"labels": {"secrets-store.csi.k8s.io/managed": "true"}},
         "the Secrets Store CSI driver's secret sync"),
        ({"annotations": {"reconcile.external-secrets.io/data-hash": "x"}},
         "the External Secrets Operator"),
        ({"managedFields": [{"manager": "kustomize-controller"}]},
         "Flux (kustomize-controller)"),
        ({"ownerReferences": [{"kind": "Widget", "name": "w"}]},
         "Widget w (an ownerReference)"),
        ({"managedFields": [{"manager": "kubectl-client-side-apply"}]}, None),
    ],
)
def test_external_owners(meta, who):
    owner = external_owner(SecretObject({"metadata": meta}, {}))
    assert (owner.who if owner else None) == who


def test_commands_never_echo_values(tmp_path):
    argv = parse_command(f"{sys.executable} -c \"import sys; v=sys.stdin.read();"
                         f" sys.stderr.write('bad ' + v + '\\\\nmore ' + v); sys.exit(4)\"",
                         "--test-cmd")
    result = run_command(argv, b"the-value", timeout=30, env={}, redact_values=[b"the-value"])
    assert not result.ok and result.summary == "exit status 4: bad [redacted]"
    slow = run_command([sys.executable, "-c", "import time; time.sleep(30)"], b"", timeout=0.5,
                       env={}, redact_values=[])
    assert slow.summary == "timed out after 0.5 s (killed)"
    missing = run_command(["/nonexistent/cmd"], b"", timeout=5, env={}, redact_values=[])
    assert not missing.ok and "cannot run" in missing.summary
    with pytest.raises(ValueError):
        parse_command("", "--revoke-cmd")


def test_reporter_modes_redact_and_shape():
    stream = io.StringIO()
    reporter = Reporter("json", stream=stream)
    reporter.add_secret(b"hush")
    reporter.event("x", "value hush here", detail=["hush"])
    document = json.loads(stream.getvalue())
    assert document["message"] == "value [redacted] here" and document["detail"] == ["[redacted]"]
    assert document["v"] == 1 and document["event"] == "x"
    tty = io.StringIO()
    live = Reporter("tty", stream=tty)
    live.progress("staged", 1, 3, 4.2, ["a", "b"])
    live.progress("staged", 2, 3, 5.0, ["b"])
    live.event("gate-passed", "done")
    live.close()
    text = tty.getvalue()
    assert text.count("\r\x1b[K") == 2 and "staged: 2/3 pods converged" in text
    assert text.endswith("rotate: done\n")
    plain = io.StringIO()
    Reporter("plain", stream=plain).event("x", "hello")
    assert plain.getvalue().endswith("Z rotate: hello\n")


def test_without_the_kubernetes_package_rotate_says_how_to_install(tmp_path):
    code = (
        "import sys; sys.modules['kubernetes'] = None\n"
        "from agentos_secrets.cli import main\n"
        "sys.exit(main(['rotate', 'AGENTOS_SERVICE_TOKEN', '--plan', '--kubeconfig', 'x']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2
    assert "pip install 'agentos-secrets[rotate]'" in proc.stderr


def test_help_does_not_import_kubernetes():
    code = ("import sys\nfrom agentos_secrets.cli import main\nmain(['--help'])\n"
            "assert 'kubernetes' not in sys.modules\n"
            "from agentos_secrets.rotate import cli\nassert 'kubernetes' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


def test_an_absent_expectation_is_not_met_by_a_key_still_being_derived():
    """A sidecar restarted during the drop gate lists NAME_PREVIOUS with mounted null and
    reason 'deriving' until its first turn: that key is still in the volume, not absent."""
    from agentos_secrets.rotate.gates import Expect

    fp = "fp1:0123456789abcdef"
    expect = Expect((("T_PREVIOUS", None), ("T", fp)))
    doc = {"version": 1, "keys": [
        {"name": "T_PREVIOUS", "mounted": None, "applied": None, "reason": "deriving"},
        {"name": "T", "mounted": fp, "applied": fp}]}
    reason = expect.lag(parse_status(json.dumps(doc).encode()))
    assert reason is not None and "T_PREVIOUS" in reason and "deriving" in reason
    gone = {"version": 1, "keys": [{"name": "T", "mounted": fp, "applied": fp}]}
    assert expect.lag(parse_status(json.dumps(gone).encode())) is None


def test_stdin_that_never_closes_is_refused_in_time(monkeypatch):
    """`rotate NAME` with a pipe whose writer never closes: exit 2's error, not a hang."""
    import os

    from agentos_secrets.rotate import values

    r, w = os.pipe()
    stdin = os.fdopen(r, "r")
    try:
        os.write(w, b"half a value")
        monkeypatch.setattr(values, "STDIN_TIMEOUT", 0.2)
        monkeypatch.setattr(sys, "stdin", stdin)
        with pytest.raises(ValueInputError, match="did not reach its end"):
            values._read_stdin(1024)
    finally:
        stdin.close()
        os.close(w)


def test_the_secret_objects_reprs_show_no_value():
    """A Node holds the Secret's data and the old value: a repr (a traceback's locals, a
    debugging log line) must show neither."""
    import base64

    from agentos_secrets.rotate.state import Node

    canary = b"canary-rotate-repr-7f3a"
    secret = SecretObject(
        raw={"metadata": {"resourceVersion": "7"},
             "data": {"K": base64.b64encode(canary).decode()}},
        data={"K": canary, "K_PREVIOUS": canary},
    )
    node = Node("local", kube=None, namespace="ns", name="s",  # type: ignore[arg-type]
                secret=secret, old=canary)
    for text in (repr(secret), repr(node), str(node)):
        assert canary.decode() not in text
        assert base64.b64encode(canary).decode() not in text
    assert "K_PREVIOUS" in repr(secret) and "'7'" in repr(secret)
    from agentos_secrets.rotate.kube import Response

    answer = Response(200, {}, json.dumps(secret.raw).encode())
    assert base64.b64encode(canary).decode() not in repr(answer)
