"""Defects found in review of ``rotate``, each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

from fake_apiserver import FakeApiServer
from rotate_helpers import (
    FAST,
    KEY,
    NS,
    OLD,
    OPERATOR_TOKEN,
    OTHER,
    SECRET,
    SimPod,
    annotations,
    write_kubeconfig,
)
from test_rotate_kill_resume import assert_never_rejected

from agentos_secrets.secret import fingerprint_bytes

FED = "AGENTOS_FED_SHARED_SECRET"
FED_PREV = FED + "_PREVIOUS"


def test_federation_killed_between_the_two_stage_writes_resumes_without_rejecting(
    api, tls, tmp_path, canary
):
    """Killed after node B's stage write, before node A's: node A's old value must survive.

    The resume read node A as 'not in progress' and never learned its old value, so the
    switch wrote ``NAME_PREVIOUS`` = None there: node A's old value was dropped at once.
    """
    with FakeApiServer(tls, token=OPERATOR_TOKEN) as node_b:
        node_b.put_secret(NS, SECRET, {KEY: b"node-b-service-token", FED: OTHER})
        api.put_secret(NS, SECRET, {KEY: OLD, FED: OTHER})
        for server in (api, node_b):
            SimPod(server, "federation-0", app="agentos-federation")
        config = write_kubeconfig(tmp_path / "kubeconfig", {"node-a": api, "node-b": node_b})
        value = tmp_path / "new"
        value.write_bytes(canary.value_bytes)
        value.chmod(0o600)
        states_a = [api.secret_data(NS, SECRET)]
        killed = threading.Event()
        proc: subprocess.Popen[bytes] | None = None

        def hook_b(record):
            if record.method == "PATCH" and record.status == 200 and not killed.is_set():
                killed.set()
                os.kill(proc.pid, signal.SIGKILL)

        def hook_a(record):
            if record.method == "PATCH" and record.status == 200:
                data = api.secret_data(NS, SECRET)
                if data != states_a[-1]:
                    states_a.append(data)

        node_b.on_request = hook_b
        api.on_request = hook_a
        base = [sys.executable, "-m", "agentos_secrets", "rotate", "--kubeconfig", str(config),
                FED, "--context", "node-a", "--context", "node-b", "--output", "plain", *FAST]
        proc = subprocess.Popen([*base, "--from-file", str(value)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        out, err = proc.communicate(timeout=120)
        assert killed.is_set(), err.decode()
        canary.assert_absent(out, err)
        assert annotations(node_b)["rotate.agentos.dev/phase"] == "staged"
        assert "rotate.agentos.dev/phase" not in annotations(api)

        resumed = subprocess.run([*base, "--resume"], capture_output=True, timeout=120,
                                 stdin=subprocess.DEVNULL, check=False)
        canary.assert_absent(resumed.stdout, resumed.stderr)
        assert_never_rejected_fed(states_a)
        assert resumed.returncode == 0, resumed.stderr.decode()
        for server in (api, node_b):
            final = server.secret_data(NS, SECRET)
            assert final[FED] == canary.value_bytes and FED_PREV not in final


def assert_never_rejected_fed(states):
    renamed = [{k.replace(FED, "AGENTOS_SERVICE_TOKEN"): v for k, v in s.items()}
               for s in states]
    assert_never_rejected(renamed)


# -- /status read by the gates ------------------------------------------------------------

FP = "fp1:0123456789abcdef"


def _doc(**extra):
    from agentos_secrets.rotate.status import parse_status

    document = {"version": 1, "pod": "p0", "keys": [{"name": "T", "mounted": FP,
                                                      "applied": FP}]}
    document.update(extra)
    return parse_status(json.dumps(document).encode())


def test_a_truncated_status_never_confirms_a_key_absent():
    """The sidecar lists at most 256 keys then says truncated: an unlisted key may be there."""
    from agentos_secrets.rotate.gates import Expect

    expect = Expect((("T_PREVIOUS", None), ("T", FP)))
    assert expect.lag(_doc(truncated=False)) is None
    reason = expect.lag(_doc(truncated=True))
    assert reason is not None and "T_PREVIOUS" in reason and "truncated" in reason
    # more entries than the reader takes is a truncation too
    many = [{"name": f"K{i}", "mounted": FP, "applied": FP} for i in range(2000)]
    assert expect.lag(_doc(keys=[*many, {"name": "T", "mounted": FP, "applied": FP}])) \
        is not None
    assert _doc(truncated="yes").error is not None  # not a boolean: malformed


def test_status_version_must_be_the_integer_1():
    """JSON true == 1 and 1.0 == 1 in Python: neither is version 1 of the contract."""
    assert _doc().error is None
    assert _doc(version=True).error is not None
    assert _doc(version=1.0).error is not None


def test_a_status_for_another_pod_never_passes_a_gate(api, kubeconfig):
    """A pod whose /status answers with another pod's name (a port pointing elsewhere)."""
    from rotate_helpers import KEY, SimPod

    from agentos_secrets.rotate.discover import list_pods
    from agentos_secrets.rotate.gates import Expect
    from agentos_secrets.rotate.kube import RateLimiter, connect
    from agentos_secrets.rotate.status import StatusReader

    pod = SimPod(api, "p0")
    liar = SimPod(api, "p1")
    original = liar.handle

    def handle(path, headers):
        code, body = original(path, headers)
        document = json.loads(body)
        document["pod"] = "p0"
        return code, json.dumps(document).encode()

    api.add_pod(NS, liar.manifest, proxy_handler=handle)
    nameless = SimPod(api, "p2")

    def handle_nameless(path, headers):
        code, body = nameless_original(path, headers)
        document = json.loads(body)
        del document["pod"]
        return code, json.dumps(document).encode()

    nameless_original = nameless.handle
    api.add_pod(NS, nameless.manifest, proxy_handler=handle_nameless)
    kube = connect(kubeconfig=str(kubeconfig), context=None, namespace=NS,
                   limiter=RateLimiter(1000, 1000))
    try:
        reader = StatusReader(kube, NS, [OLD])
        expect = Expect(((KEY, fingerprint_bytes(OLD)),))
        found = {p.name: p for p in list_pods(kube, NS, SECRET)}
        assert expect.lag(reader.status(found["p0"])) is None
        lie = expect.lag(reader.status(found["p1"]))
        assert lie is not None and "p0" in lie and "POD_NAME" in lie
        assert expect.lag(reader.status(found["p2"])) is not None
    finally:
        kube.close()
    assert pod.reads and liar.reads and nameless.reads


def test_pod_name_match_allows_only_the_kubelets_hostname_truncation():
    from agentos_secrets.rotate.status import same_pod

    long = "agentos-model-policy-" + "x" * 50 + "-abcde"
    assert same_pod("p0", "p0")
    assert not same_pod("p0", "p1") and not same_pod(None, "p1") and not same_pod("", "p1")
    assert same_pod(long[:63].rstrip("-."), long)
    assert not same_pod(long[:62], long) and not same_pod("p", "p0")


# -- inputs --------------------------------------------------------------------------------


def test_a_relative_from_file_path_is_never_echoed(kubeconfig, tmp_path, monkeypatch, canary):
    """A value typed where the path goes (``--from-file VALUE``) must not be printed back."""
    from rotate_helpers import rotate

    monkeypatch.chdir(tmp_path)
    code, out, err = rotate(kubeconfig, KEY, "--from-file", canary.value, *FAST)
    assert code == 2 and "--from-file" in err and "no such file" in err
    canary.assert_absent(out, err)
    (tmp_path / "sub").mkdir()
    code, out, err = rotate(kubeconfig, KEY, "--from-file", "sub/" + canary.value, *FAST)
    assert code == 2
    canary.assert_absent(out, err)
    # an absolute path is shown: it is where to look
    code, _, err = rotate(kubeconfig, KEY, "--from-file", str(tmp_path / "missing"), *FAST)
    assert code == 2 and str(tmp_path / "missing") in err


def _rotate_process(*args, env=None):
    return subprocess.run([sys.executable, "-m", "agentos_secrets", "rotate", KEY, "--plan",
                           "--output", "plain", *args], capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False, env=env)


def test_kubeconfig_problems_are_explained_with_exit_2(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("clusters: [\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    for path, words in ((broken, "not valid YAML"), (fifo, "not a regular file"),
                        (tmp_path, "not a regular file"), (huge, "bytes")):
        result = _rotate_process("--kubeconfig", str(path))
        err = result.stderr.decode()
        assert result.returncode == 2, err
        assert "Traceback" not in err and words in err and str(path) in err
    env = {**os.environ, "KUBECONFIG": f"{tmp_path / 'absent'}{os.pathsep}{fifo}"}
    result = _rotate_process(env=env)
    assert result.returncode == 2 and "not a regular file" in result.stderr.decode()


# -- responses -----------------------------------------------------------------------------


def test_a_trickling_response_is_cut_at_its_deadline():
    """A pod (through pods/proxy) that sends one byte at a time, each within the read
    timeout: the deadline must cut it, not wait for a 64 KiB chunk to fill."""
    import socket
    import time

    from kubernetes import client

    from agentos_secrets.rotate.kube import Kube, KubeError, RateLimiter

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcome = {"sent": 0, "cut": False}

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\n\r\n")
            try:
                for _ in range(150):  # 30 s in all
                    conn.sendall(b" ")
                    outcome["sent"] += 1
                    time.sleep(0.2)
            except OSError:
                outcome["cut"] = True

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    kube = Kube(client.ApiClient(configuration), name="t", namespace="ns",
                limiter=RateLimiter(1000, 1000))
    try:
        try:
            kube.request("GET", "/slow", timeout=(1.0, 1.0), attempts=1)
        except KubeError as exc:
            assert "deadline" in exc.message
        else:
            raise AssertionError("a trickling response was accepted")
    finally:
        kube.close()
    thread.join(timeout=60)
    listener.close()
    assert outcome["cut"] and outcome["sent"] < 150


# -- --test-cmd, --revoke-cmd, --store-cmd ------------------------------------------------


def test_a_command_echoing_a_multi_line_value_shows_none_of_it():
    """The summary is stderr's first line: for a multi-line value that is one line of the
    value, which the whole-value redaction did not match."""
    from agentos_secrets.rotate.commands import run_command

    value = b"first-line-of-the-secret-4f2a\nsecond-line-of-the-secret-9c1b"
    echo = [sys.executable, "-c", "import sys; sys.stderr.write(sys.stdin.read()); sys.exit(3)"]
    result = run_command(echo, value, timeout=30, env={}, redact_values=[value])
    assert not result.ok and result.summary.startswith("exit status 3")
    assert "first-line" not in result.summary and "[redacted]" in result.summary
    # a store command echoing its JSON input escapes the value's quotes and backslashes
    quoted = b'quote"and\\backslash-secret-77aa'
    echo_json = [sys.executable, "-c",
                 "import json, sys; sys.stderr.write('bad input: ' + json.dumps("
                 "{'v': sys.stdin.read()}) + '\\n'); sys.exit(1)"]
    result = run_command(echo_json, quoted, timeout=30, env={}, redact_values=[quoted])
    assert "backslash-secret" not in result.summary, result.summary


def test_a_command_flooding_its_output_is_not_kept_in_memory():
    import resource

    from agentos_secrets.rotate.commands import run_command

    flood = [sys.executable, "-c",
             "import os\nblock = b'x' * 1048576\nfor _ in range(400):\n"
             "    os.write(1, block)\n    os.write(2, block)\nraise SystemExit(1)"]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_command(flood, b"v", timeout=120, env={}, redact_values=[])
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert not result.ok and result.summary.startswith("exit status 1")
    assert grown_mib < 200, f"{grown_mib:.0f} MiB kept for 800 MiB of output"


def test_a_command_that_leaves_a_child_behind_is_killed_at_its_timeout(tmp_path):
    from agentos_secrets.rotate.commands import run_command

    pidfile = tmp_path / "child"
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
              "time.sleep(600)\n")
    result = run_command([sys.executable, "-c", script], b"v", timeout=3, env={},
                         redact_values=[])
    assert not result.ok and "timed out" in result.summary
    child = int(pidfile.read_text())
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        status = open(f"/proc/{child}/stat").read().split()[2]
        if status == "Z":
            break
        import time
        time.sleep(0.1)
    else:
        raise AssertionError("the command's child outlived its timeout")


def test_store_mode_stops_before_the_store_when_another_run_took_over(api, kubeconfig,
                                                                     tmp_path, canary):
    """With --store-cmd the store is written before the annotations: a process whose
    rotation was taken over (``--resume``/``--abort`` elsewhere) must not run the store
    command again, nor win the annotation write with the resourceVersion it re-read."""
    from rotate_helpers import rotate

    owner_ref = [{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                  "name": "agentos-secrets", "uid": "x", "controller": True}]
    api.put_secret(NS, SECRET, {KEY: OLD}, owner_references=owner_ref)
    store = tmp_path / "store.json"
    store.write_text(json.dumps({KEY: OLD.decode()}))
    calls = tmp_path / "calls"
    script = tmp_path / "store.py"
    script.write_text(
        "import json, os, sys\n"
        f"path = {str(store)!r}\n"
        "change = json.load(sys.stdin)\n"
        f"open({str(calls)!r}, 'a').write(change['phase'] + '\\n')\n"
        "data = json.load(open(path))\n"
        "data.update(change['set'])\n"
        "for key in change['remove']: data.pop(key, None)\n"
        "with open(path + '.tmp', 'w') as handle: json.dump(data, handle)\n"
        "os.replace(path + '.tmp', path)\n"
    )
    stop = threading.Event()
    taken = threading.Event()

    def operator():
        while not stop.wait(0.05):
            wanted = {k: v.encode() for k, v in json.loads(store.read_text()).items()}
            if api.secret_data(NS, SECRET) != wanted:
                current = api.secret(NS, SECRET)["metadata"]
                api.put_secret(NS, SECRET, wanted, owner_references=owner_ref,
                               annotations=current.get("annotations"))

    def takeover(record):  # another operator's --resume, during the stage gate
        if "/proxy/" in record.path and not taken.is_set():
            current = api.secret(NS, SECRET)["metadata"]
            annotations = {**current["annotations"], "rotate.agentos.dev/run": "another-run"}
            api.put_secret(NS, SECRET, api.secret_data(NS, SECRET),
                           owner_references=owner_ref, annotations=annotations)
            taken.set()

    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    api.on_request = takeover
    try:
        SimPod(api, "p0")
        value = tmp_path / "new"
        value.write_bytes(canary.value_bytes)
        value.chmod(0o600)
        code, out, err = rotate(kubeconfig, KEY, "--from-file", str(value), "--store-cmd",
                                f"{sys.executable} {script}", "--refresh-interval", "0",
                                *FAST)
    finally:
        stop.set()
        thread.join()
    assert taken.is_set()
    assert code == 1, out + err
    assert "another rotate holds this Secret now" in err
    assert calls.read_text().split() == ["staged"]
    assert annotations(api)["rotate.agentos.dev/run"] == "another-run"
    canary.assert_absent(out, err)


# -- the sidecar's per-key "applied" -------------------------------------------------------


def test_a_rollout_sidecar_never_reports_its_own_old_pod_as_applied(tmp_path):
    """--action rollout replaces the pod: its app keeps what it started with. Reporting
    the content as applied once the Deployment patch succeeded let a rotate gate pass on
    old pods still running the pre-rotation values, while the rollout was under way."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sidecar"))
    from test_sidecar_loop import Rig

    rig = Rig(tmp_path)
    rig.action.kind = "rollout"
    rig.start()
    rig.run_for(5)
    start = {k.name: k for k in rig.engine.keys.snapshot()[0]}
    v0 = fingerprint_bytes(b"v0")
    assert start["AGENTOS_SERVICE_TOKEN"].applied == v0
    rig.rotate("v1")
    rig.run_for(30)
    assert len(rig.action.calls) == 1  # the Deployment was patched
    keys = {k.name: k for k in rig.engine.keys.snapshot()[0]}
    assert keys["AGENTOS_SERVICE_TOKEN"].mounted == fingerprint_bytes(b"v1")
    assert keys["AGENTOS_SERVICE_TOKEN"].applied == v0  # this pod's app still has v0
    # a restart of the sidecar container in the same pod keeps that
    rig.engine = rig.make()
    rig.start()
    rig.run_for(5)
    keys = {k.name: k for k in rig.engine.keys.snapshot()[0]}
    assert keys["AGENTOS_SERVICE_TOKEN"].applied == v0


def test_a_reloading_action_still_reports_applied_after_success(tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sidecar"))
    from test_sidecar_loop import Rig

    rig = Rig(tmp_path)
    rig.start()
    rig.rotate("v1")
    rig.run_for(30)
    keys = {k.name: k for k in rig.engine.keys.snapshot()[0]}
    assert keys["AGENTOS_SERVICE_TOKEN"].applied == fingerprint_bytes(b"v1")


# -- drain ---------------------------------------------------------------------------------


def test_a_pod_clock_behind_cannot_end_the_drain_while_its_counter_moves(api, kubeconfig):
    """The gauge is the pod's wall clock: a pod an hour behind reports its latest
    'previous' match as an hour old. The counter, read by rotate itself, still moves."""
    import time

    from rotate_helpers import rotate

    pod = SimPod(api, "p0", metrics={"previous": 1, "last": time.time() - 3600})
    original = pod._metrics

    def moving():
        pod.metrics["previous"] += 1  # a caller on the old value, at every read
        return original()

    pod._metrics = moving
    code, out, err = rotate(kubeconfig, KEY, "--generate", *FAST, "--quiet", "60",
                            "--drain-timeout", "1")
    assert code == 1, out + err
    assert "drain" in err and "p0" in err
    assert api.secret_data(NS, SECRET).get(KEY + "_PREVIOUS") is not None, "nothing dropped"


# -- output --------------------------------------------------------------------------------


def test_a_closed_output_pipe_does_not_stop_the_rotation_with_a_traceback(api, kubeconfig):
    """``rotate ... --output json | head -1``: the reader goes away mid-rotation."""
    SimPod(api, "p0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentos_secrets", "rotate", "--kubeconfig", str(kubeconfig),
         KEY, "--generate", "--output", "json", *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader is gone
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode == 0, err.decode()
    assert annotations(api)["rotate.agentos.dev/phase"] == "done"


def test_flags_out_of_range_are_refused_with_exit_2(api, kubeconfig):
    from rotate_helpers import rotate

    cases = [
        (["--cmd-timeout", "0"], "--cmd-timeout"),
        (["--qps", "1e-9"], "--qps"),
        (["--status-token-key", "K" * 300], "--status-token-key"),
        (["--selector", "app=" + "a" * 5000], "--selector"),
        (["--selector", "app=x\n"], "--selector"),
        ([arg for i in range(17) for arg in ("--context", f"c{i}")], "--context"),
    ]
    for args, flag in cases:
        code, out, err = rotate(kubeconfig, KEY, "--plan", *args)
        assert code == 2, (args[:2], out, err)
        assert flag in err and "Traceback" not in err
    assert api.requests == []


def test_generated_values_are_visible_ascii_only():
    """A token must travel in HTTP headers (X-AgentOS-Token included): a non-ASCII
    alphabet gave a value no caller could send, rejected by everyone after the switch."""
    import pytest

    from agentos_secrets.rotate.values import ValueInputError, generate

    for alphabet in ("äöüßÄÖÜ" * 1 + "abcdefgh", "абвгдежз"):
        with pytest.raises(ValueInputError, match="--alphabet"):
            generate(alphabet=alphabet)
    value = generate(alphabet="!#$%&*+-.0123456789", length=40).reveal()
    assert len(value) == 40 and all(33 <= ord(c) < 127 for c in value)


def test_resume_refuses_an_old_value_changed_by_hand(api, kubeconfig):
    """Staged, then someone replaced NAME by hand: switching would put that value under
    NAME_PREVIOUS and reject every caller still on the real old value."""
    from rotate_helpers import rotate

    pod = SimPod(api, "p0", frozen=True)
    code, _, _ = rotate(kubeconfig, KEY, "--generate", *FAST[:1], "1", *FAST[2:])
    assert code == 1 and annotations(api)["rotate.agentos.dev/phase"] == "staged"
    data = api.secret_data(NS, SECRET)
    data[KEY] = b"replaced-by-hand-value-123"
    meta = api.secret(NS, SECRET)["metadata"]
    api.put_secret(NS, SECRET, data, annotations=meta["annotations"])
    pod.frozen = False
    code, _, err = rotate(kubeconfig, KEY, "--resume", *FAST)
    assert code == 1 and "changed outside rotate" in err
    assert annotations(api)["rotate.agentos.dev/phase"] == "staged"
