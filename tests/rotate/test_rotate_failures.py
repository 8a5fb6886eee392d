"""Every failure ``rotate`` must survive: gates hold, nothing is dropped, the cause is named."""

from __future__ import annotations

import json
import threading

import pytest
from rotate_helpers import (
    FAST,
    KEY,
    NS,
    OLD,
    SECRET,
    SimPod,
    annotations,
    events,
    rotate,
)

PREV = KEY + "_PREVIOUS"
SHORT = [a if a != "5" else "1" for a in FAST]  # a 1 s gate timeout


def _value(tmp_path, value: bytes):
    path = tmp_path / "new"
    path.write_bytes(value)
    path.chmod(0o600)
    return str(path)


def test_kubelet_that_never_syncs_holds_the_gate_and_names_the_pod(api, kubeconfig, tmp_path,
                                                                    canary):
    SimPod(api, "fine-0")
    stuck = SimPod(api, "stuck-1", frozen=True)
    code, out, err = rotate(kubeconfig, KEY, "--from-file", _value(tmp_path, canary.value_bytes),
                            "--output", "json", *SHORT)
    assert code == 1
    failed = [e for e in events(out) if e["event"] == "gate-failed"]
    assert failed and failed[0]["phase"] == "staged"
    assert failed[0]["lagging"] == [{"context": "main", "pod": "stuck-1",
                                     "reason": f"still mounts nothing under {PREV}"
                                               " (kubelet has not synced)"}]
    data = api.secret_data(NS, SECRET)
    assert data[KEY] == OLD and data[PREV] == canary.value_bytes  # staged, nothing switched
    assert annotations(api)["rotate.agentos.dev/phase"] == "staged"
    # the kubelet catches up: --resume finishes from the cluster's state
    stuck.frozen = False
    code, out, err = rotate(kubeconfig, KEY, "--resume", "--output", "json", *FAST)
    assert code == 0, out + err
    assert api.secret_data(NS, SECRET) == {KEY: canary.value_bytes,
                                           "AGENTOS_FED_SHARED_SECRET": b"federation-shared"
                                           b"-value-abcdef"}
    canary.assert_absent(out, err)


def test_sidecar_unreachable_and_no_sidecar_are_named(api, kubeconfig):
    SimPod(api, "ok-0")
    SimPod(api, "nosidecar-1", sidecar=False)
    api.add_pod(NS, {**SimPod(api, "tmp").manifest, "metadata": {
        **SimPod(api, "tmp").manifest["metadata"], "name": "unreachable-2"}})
    api.remove_pod(NS, "tmp")
    code, out, _err = rotate(kubeconfig, KEY, "--generate", "--output", "json", *SHORT)
    assert code == 1
    lagging = {e["pod"]: e["reason"] for e in
               next(e for e in events(out) if e["event"] == "gate-failed")["lagging"]}
    assert lagging["nosidecar-1"].startswith("no secrets-sidecar container")
    assert lagging["unreachable-2"].startswith("sidecar unreachable")
    assert PREV in api.secret_data(NS, SECRET) and api.secret_data(NS, SECRET)[KEY] == OLD


def test_action_failing_and_pod_not_ready_are_reasons(api, kubeconfig):
    SimPod(api, "failing-0", action_fails=True)
    api.set_pod_ready(NS, "failing-0", False)
    code, out, _ = rotate(kubeconfig, KEY, "--generate", "--output", "json", *SHORT)
    assert code == 1
    reason = next(e for e in events(out) if e["event"] == "gate-failed")["lagging"][0]["reason"]
    assert reason == "action failing (HTTP 403 from the API server); pod not ready"


def test_api_5xx_and_429_are_retried(api, kubeconfig):
    SimPod(api, "p0")
    api.fail_next(503, times=2, method="PATCH")
    api.fail_next(429, method="GET", path="/secrets/", retry_after=1)
    api.fail_next(500, method="GET", path="/pods$")
    code, out, err = rotate(kubeconfig, KEY, "--generate", "--output", "json", *FAST)
    assert code == 0, out + err
    exit_event = events(out)[-1]
    assert exit_event["event"] == "exit" and exit_event["retries"] == 4
    statuses = [r.status for r in api.requests]
    assert statuses.count(503) == 2 and statuses.count(429) == 1 and statuses.count(500) == 1


def test_persistent_5xx_gives_up_bounded_and_leaves_a_resumable_state(api, kubeconfig):
    SimPod(api, "p0")
    api.fail_next(503, times=50, method="PATCH")
    code, out, _err = rotate(kubeconfig, KEY, "--generate", "--output", "json", *FAST)
    assert code == 1
    assert "writing phase staged failed" in events(out)[-2]["message"]
    assert api.count("PATCH") == 5  # bounded: max attempts
    assert api.secret_data(NS, SECRET).keys() == {KEY, "AGENTOS_FED_SHARED_SECRET"}


def test_rbac_403_on_the_secret_is_explained(api, kubeconfig):
    SimPod(api, "p0")
    api.deny("patch", "secrets")
    code, _out, err = rotate(kubeconfig, KEY, "--generate", *FAST)
    assert code == 1
    assert "permission denied writing phase staged" in err
    assert "cannot patch resource \"secrets\"" in err
    assert "deploy/k8s/rbac-rotate" in err


def test_rbac_403_on_pods_proxy_fails_the_gate_at_once(api, kubeconfig):
    SimPod(api, "p0")
    api.deny("get", "pods/proxy")
    code, _out, err = rotate(kubeconfig, KEY, "--generate", "--gate-timeout", "60",
                            *FAST[2:])
    assert code == 1
    assert "pods/proxy forbidden" in err and 'cannot get resource "pods/proxy"' in err
    assert annotations(api)["rotate.agentos.dev/phase"] == "staged"


def test_pod_replaced_mid_gate_counts_the_new_pod(api, kubeconfig):
    SimPod(api, "old-pod", frozen=True)
    replaced = threading.Event()

    def replace(record):
        # after a few polls of the stuck pod, a rollout replaces it with a fresh one
        if "/proxy/" in record.path and not replaced.is_set():
            if sum(1 for r in api.requests if "old-pod" in r.path) >= 3:
                replaced.set()
                api.remove_pod(NS, "old-pod")
                SimPod(api, "new-pod")

    api.on_request = replace
    code, out, err = rotate(kubeconfig, KEY, "--generate", "--output", "json", *FAST)
    assert code == 0, out + err
    assert replaced.is_set()
    passed = [e for e in events(out) if e["event"] == "gate-passed"]
    assert [e["pods"] for e in passed] == [1, 1, 1]


def test_test_cmd_failure_aborts_cleanly_and_redacts(api, kubeconfig, tmp_path, canary):
    SimPod(api, "p0")
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nread v\necho \"login failed for $v\" >&2\nexit 3\n")
    script.chmod(0o755)
    code, out, err = rotate(kubeconfig, KEY, "--from-file", _value(tmp_path, canary.value_bytes),
                            "--test-cmd", str(script), "--output", "json", *FAST)
    assert code == 1
    test_event = next(e for e in events(out) if e["event"] == "test-cmd")
    assert test_event["summary"] == "exit status 3: login failed for [redacted]"
    assert api.secret_data(NS, SECRET)[KEY] == OLD
    assert PREV not in api.secret_data(NS, SECRET)
    assert annotations(api)["rotate.agentos.dev/phase"] == "aborted"
    canary.assert_absent(out, err)
    # the lock is released: a new rotation may start
    code, out, err = rotate(kubeconfig, KEY, "--generate", *FAST)
    assert code == 0, err


def test_test_cmd_success_gets_the_value_on_stdin(api, kubeconfig, tmp_path, canary):
    SimPod(api, "p0")
    seen = tmp_path / "seen"
    script = tmp_path / "check.sh"
    script.write_text(f"#!/bin/sh\ncat > {seen}\n")
    script.chmod(0o755)
    code, _, err = rotate(kubeconfig, KEY, "--from-file", _value(tmp_path, canary.value_bytes),
                          "--test-cmd", str(script), *FAST)
    assert code == 0, err
    assert seen.read_bytes() == canary.value_bytes


def test_revoke_cmd_gets_the_old_value_at_the_end(api, kubeconfig, tmp_path):
    SimPod(api, "p0")
    seen = tmp_path / "revoked"
    script = tmp_path / "revoke.sh"
    script.write_text(f"#!/bin/sh\ncat > {seen}\necho $AGENTOS_ROTATE_PHASE >> {seen}\n")
    script.chmod(0o755)
    code, _, err = rotate(kubeconfig, KEY, "--generate", "--revoke-cmd", str(script), *FAST)
    assert code == 0, err
    assert seen.read_bytes() == OLD + b"revoke\n"
    assert PREV not in api.secret_data(NS, SECRET)


def test_second_rotation_is_refused_while_one_is_in_progress(api, kubeconfig):
    SimPod(api, "stuck", frozen=True)
    code, _, _ = rotate(kubeconfig, KEY, "--generate", *SHORT)
    assert code == 1
    code, _, err = rotate(kubeconfig, KEY, "--generate", *FAST)
    assert code == 1
    assert "a rotation of AGENTOS_SERVICE_TOKEN is in progress (phase staged" in err
    assert "--resume" in err and "--abort" in err


def test_concurrent_writer_between_read_and_write_gets_409_and_nothing_is_written(
    api, kubeconfig,
):
    SimPod(api, "p0")
    raced = threading.Event()

    def other_rotation(record):
        # another rotate (or a person) writes the Secret right after this one read it
        if record.method == "GET" and record.path.endswith(f"/secrets/{SECRET}") \
                and not raced.is_set():
            raced.set()
            api.put_secret(NS, SECRET, {KEY: OLD, PREV: b"someone-elses-value"},
                           annotations={"rotate.agentos.dev/phase": "staged",
                                        "rotate.agentos.dev/run": "0123456789abcdef",
                                        "rotate.agentos.dev/owner": "bob@laptop pid 7"})

    api.on_request = other_rotation
    code, _out, err = rotate(kubeconfig, KEY, "--generate", *FAST)
    assert code == 1
    assert "another rotate holds this Secret now (run 0123456789abcdef, bob@laptop pid 7" in err
    assert api.secret_data(NS, SECRET)[PREV] == b"someone-elses-value"
    assert [r.status for r in api.requests if r.method == "PATCH"] == [409]


def test_abort_after_the_drop_finishes_instead(api, kubeconfig, tmp_path, canary):
    pod = SimPod(api, "p0")
    # the kubelet stops syncing right after the switch: the drop gate cannot pass
    def freeze_after_switch(record):
        if record.method == "PATCH" and b'"switched"' in record.body:
            pod.sync()
            pod.frozen = True

    api.on_request = freeze_after_switch
    code, _, err = rotate(kubeconfig, KEY, "--from-file", _value(tmp_path, canary.value_bytes),
                          *SHORT)
    assert code == 1 and "gate dropped: timed out" in err
    api.on_request = None
    # the drop was written (NAME_PREVIOUS gone) but not applied by the pod: --abort can
    # no longer roll back (the old value is gone) and finishes instead
    pod.frozen = False
    code, _out, err = rotate(kubeconfig, KEY, "--abort", *FAST)
    assert code == 0, err
    assert "nothing can be rolled back" in err
    assert api.secret_data(NS, SECRET)[KEY] == canary.value_bytes


def test_abort_while_switched_restores_the_old_value(api, kubeconfig, tmp_path):
    SimPod(api, "p0")
    metrics_pod = SimPod(api, "p1", metrics={"previous": 5, "last": 9e9})  # always busy
    code, out, err = rotate(kubeconfig, KEY, "--generate", *FAST, "--drain-timeout", "0.5",
                            "--quiet", "1")
    assert code == 1
    assert "drain" in err and "p1" in err
    data = api.secret_data(NS, SECRET)
    assert data[PREV] == OLD  # switched, and nothing dropped
    assert annotations(api)["rotate.agentos.dev/phase"] == "switched"
    metrics_pod.metrics = {"previous": 5, "last": 1.0}  # quiet since 1970
    code, out, err = rotate(kubeconfig, KEY, "--abort", "--output", "json", *FAST)
    assert code == 0, out + err
    phases = [e["phase"] for e in events(out) if e["event"] == "write"]
    assert phases == ["switched", "rolling-back", "aborted"]
    assert api.secret_data(NS, SECRET) == {KEY: OLD, "AGENTOS_FED_SHARED_SECRET":
                                           b"federation-shared-value-abcdef"}


def test_drain_waits_for_the_quiet_period_then_drops(api, kubeconfig):
    import time

    pod = SimPod(api, "p0", metrics={"previous": 3, "last": time.time()})
    code, out, err = rotate(kubeconfig, KEY, "--generate", "--output", "json", *FAST,
                            "--quiet", "1")
    assert code == 0, out + err
    drain = [e for e in events(out) if e["event"] == "gate-progress" and e["phase"] == "drain"]
    assert drain[0]["lagging"] == ["p0"], "a recent 'previous' match holds the drop"
    assert pod.reads > 3


def test_malicious_status_bodies_do_not_crash_or_pass(api, kubeconfig):
    bodies = {
        "huge": (200, b"{" + b" " * (2 * 1024 * 1024) + b"}"),
        "deep": (200, b"[" * 100000 + b"]" * 100000),
        "garbage": (200, b"\xff\xfe not json"),
        "wrongtype": (200, json.dumps({"version": 1, "keys": [{"name": 5}]}).encode()),
        "fakefp": (200, json.dumps({"version": 1, "pod": "fakefp", "keys": [
            {"name": PREV, "mounted": {"x": 1}, "applied": ["fp1:"]}]}).encode()),
    }
    for name, answer in bodies.items():
        manifest = SimPod(api, name).manifest
        api.add_pod(NS, manifest, proxy_handler=lambda p, h, a=answer: a)
    code, out, _ = rotate(kubeconfig, KEY, "--generate", "--output", "json", *SHORT)
    assert code == 1
    lagging = {e["pod"]: e["reason"] for e in
               next(e for e in events(out) if e["event"] == "gate-failed")["lagging"]}
    assert lagging["huge"].startswith("sidecar unreachable (response")
    assert lagging["deep"] == "malformed /status (not JSON)"
    assert lagging["garbage"] == "malformed /status (not JSON)"
    assert lagging["wrongtype"] == "malformed /status (a key entry without a name)"
    assert lagging["fakefp"].startswith("still mounts nothing")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--generate", "s3cr3t-on-argv"], "not shown: a secret value is never given"),
        ([], "no new value"),
        (["--generate", "--from-file", "/x"], "choose one"),
        (["--resume", "--generate"], "not with --plan, --resume or --abort"),
        (["--generate", "--length", "8"], "at least 128 are required"),
        (["--generate", "--qps", "0"], "--qps"),
        (["--generate", "--namespace", "Bad_NS"], "--namespace"),
        (["--generate", "--test-cmd", "'unterminated"], "--test-cmd: cannot split"),
        (["--generate", "--context", "nope"], "--context nope: no such context"),
    ],
)
def test_bad_usage_exits_2_without_echoing_values(api, kubeconfig, args, message):
    import io
    import sys

    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(b""))
    sys.stdin.isatty = lambda: True  # type: ignore[method-assign]
    try:
        try:
            code, out, err = rotate(kubeconfig, KEY, *args)
        except SystemExit as exc:  # argparse errors
            code, out, err = exc.code, "", ""
    finally:
        sys.stdin = old
    assert code == 2
    assert "s3cr3t-on-argv" not in out + err
    if err or out:
        assert message in err + out
    assert api.count("PATCH") == 0


def test_argv_value_error_text_never_echoes_it(capsys):
    from agentos_secrets.rotate.cli import main

    with pytest.raises(SystemExit) as caught:
        main([KEY, "--generate", "s3cr3t-on-argv"])
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert "s3cr3t-on-argv" not in captured.out + captured.err
    assert "not shown" in captured.err


def test_secret_with_previous_key_already_is_refused(api, kubeconfig):
    api.put_secret(NS, SECRET, {KEY: OLD, PREV: b"manual-stage"})
    code, _, err = rotate(kubeconfig, KEY, "--generate", *FAST)
    assert code == 2 and "already holds AGENTOS_SERVICE_TOKEN_PREVIOUS" in err


def test_resume_with_nothing_in_progress_is_bad_usage(api, kubeconfig):
    code, _, err = rotate(kubeconfig, KEY, "--resume", *FAST)
    assert code == 2 and "nothing to resume" in err


def test_abort_while_staged_removes_the_new_value(api, kubeconfig, canary, tmp_path):
    pod = SimPod(api, "p0", frozen=True)
    code, _, _ = rotate(kubeconfig, KEY, "--from-file", _value(tmp_path, canary.value_bytes),
                        *SHORT)
    assert code == 1
    assert api.secret_data(NS, SECRET)[PREV] == canary.value_bytes
    pod.frozen = False
    code, out, err = rotate(kubeconfig, KEY, "--abort", "--output", "json", *FAST)
    assert code == 0, out + err
    assert [e["phase"] for e in events(out) if e["event"] == "write"] == ["staged", "aborted"]
    assert PREV not in api.secret_data(NS, SECRET)
    assert api.secret_data(NS, SECRET)[KEY] == OLD
    assert annotations(api)["rotate.agentos.dev/phase"] == "aborted"
    canary.assert_absent(out, err)
    code, _, err = rotate(kubeconfig, KEY, "--abort", *FAST)
    assert code == 0 and "the last rotation of AGENTOS_SERVICE_TOKEN is aborted already" in err


def test_a_write_whose_answer_is_lost_is_confirmed_on_re_read(api, kubeconfig):
    SimPod(api, "p0")
    dropped = threading.Event()

    def lose_the_answer(record):
        # the write is applied, then the connection dies before the answer (a proxy
        # timeout, a 5xx from a load balancer): rotate retries, gets 409, re-reads
        if record.method == "PATCH" and record.status == 200 and not dropped.is_set():
            dropped.set()
            raise ConnectionAbortedError("answer lost")

    api.on_request = lose_the_answer
    code, out, err = rotate(kubeconfig, KEY, "--generate", "--output", "json", *FAST)
    assert code == 0, out + err
    assert dropped.is_set()
    writes = [e for e in events(out) if e["event"] == "write"]
    assert "confirmed on re-read" in writes[0]["message"]
    assert [r.status for r in api.requests if r.method == "PATCH"][:2] == [200, 409]
