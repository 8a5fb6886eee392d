"""AS213: rotate must be able to read every consuming pod's sidecar /status through
pods/proxy. The bundled overlays and examples pass (tests/check/test_check_manifests.py);
here each way of breaking it, in native and classic sidecar form."""

from __future__ import annotations

import pytest
from redteam_lib import container, deployment, good_docs, set_env, write


def _classic(docs):
    """Move the native sidecar (initContainers) to containers, as the classic variant."""
    pod = deployment(docs)["spec"]["template"]["spec"]
    sidecar = pod.pop("initContainers")[0]
    sidecar.pop("restartPolicy")
    pod["containers"].append(sidecar)
    return docs


def _run(run_check, tmp_path, docs):
    run = run_check("--no-env", "--manifests", str(write(tmp_path, docs)), "--format", "json")
    return run, [f["message"] for f in run.json["findings"] if f["ruleId"] == "AS213"]


@pytest.mark.parametrize("form", ["native", "classic"])
def test_the_good_variant_passes_in_both_forms(run_check, tmp_path, form):
    docs = good_docs() if form == "native" else _classic(good_docs())
    run, messages = _run(run_check, tmp_path, docs)
    assert messages == [] and run.code == 0, run.out


@pytest.mark.parametrize("form", ["native", "classic"])
@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: set_env(container(d, "secrets-sidecar"), "AGENTOS_SIDECAR_LISTEN", "off"),
     "--listen is off"),
    (lambda d: set_env(container(d, "secrets-sidecar"), "AGENTOS_SIDECAR_LISTEN",
                       "localhost:9095"), "loopback"),
    (lambda d: container(d, "secrets-sidecar").pop("ports"), "does not declare"),
    (lambda d: set_env(container(d, "secrets-sidecar"), "AGENTOS_SIDECAR_LISTEN",
                       "0.0.0.0:9100"), "does not declare its --listen port 9100"),
    (lambda d: deployment(d)["spec"]["template"]["metadata"].setdefault("annotations", {})
     .update({"rotate.agentos.dev/status-port": "8080"}), "rotate reads port 8080"),
    (lambda d: container(d, "secrets-sidecar").update(
        ports=[{"name": "probe", "containerPort": 8081}, {"containerPort": 9095}]),
     "rotate reads port 8081 (its first port)"),
])
def test_each_way_to_hide_status_is_as213(run_check, tmp_path, form, change, expected):
    docs = good_docs() if form == "native" else _classic(good_docs())
    change(docs)
    run, messages = _run(run_check, tmp_path, docs)
    assert len(messages) == 1 and expected in messages[0], run.out
    assert run.code == 1


def test_listen_on_ipv6_any_passes(run_check, tmp_path):
    docs = good_docs()
    set_env(container(docs, "secrets-sidecar"), "AGENTOS_SIDECAR_LISTEN", "[::]:9095")
    assert _run(run_check, tmp_path, docs)[1] == []


def test_a_projected_secret_counts_and_csi_does_not(run_check, tmp_path):
    docs = good_docs()
    container(docs, "secrets-sidecar").pop("ports")
    pod = deployment(docs)["spec"]["template"]["spec"]
    pod["volumes"][0] = {"name": "agentos-secrets", "projected": {"sources": [
        {"secret": {"name": "agentos-secrets"}}]}}
    assert len(_run(run_check, tmp_path, docs)[1]) == 1
    pod["volumes"][0] = {"name": "agentos-secrets", "csi": {
        "driver": "secrets-store.csi.k8s.io",
        "volumeAttributes": {"secretProviderClass": "agentos-secrets"}}}
    assert _run(run_check, tmp_path, docs)[1] == []
