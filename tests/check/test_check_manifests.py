"""Manifests: the bundled deploy/k8s overlays pass, every input form works (kustomization
directory, YAML file, stdin), every unusable input is exit 2 with a clear message, and
suppressions need a reason and stay visible."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from check_lib import MANIFEST_VARIANTS

from agentos_secrets.check import kustomize

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"


def _render(directory: Path) -> str:
    kubectl = kustomize.find_kubectl()
    return subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                          text=True, check=True, timeout=60).stdout


# -- the bundled manifests ------------------------------------------------------------------


def test_local_dev_overlay_passes_as_dev(run_check):
    run = run_check("--no-env", "--manifests", str(K8S / "overlays" / "local-dev"),
                    "--profile", "dev", "--format", "json")
    assert run.json["findings"] == [], run.out
    assert run.code == 0


def test_production_overlay_passes_as_prod_with_real_looking_secret_files(
    run_check, env_variant
):
    run = run_check("--env-file", str(env_variant()),
                    "--manifests", str(K8S / "overlays" / "production"),
                    "--profile", "prod", "--fail-on", "warning", "--format", "json")
    assert run.json["findings"] == [], run.out
    assert run.code == 0
    assert [i["kind"] for i in run.json["inputs"]] == ["environment", "manifests"]


def test_local_dev_overlay_fails_as_prod(run_check):
    """The dev overlay must never pass a prod check: example values, a default tenant,
    the dev profile."""
    run = run_check("--no-env", "--manifests", str(K8S / "overlays" / "local-dev"),
                    "--profile", "prod", "--format", "json")
    assert run.code == 1
    assert {"AS225", "AS226"} <= run.rule_ids


def test_rbac_verbs_split_across_rules_are_granted(run_check, tmp_path):
    """RBAC is additive: get in one rule and patch in another is what the sidecar needs."""
    (tmp_path / "kustomization.yaml").write_text(
        f"resources:\n  - {os.path.relpath(MANIFEST_VARIANTS / 'good', tmp_path)}\n"
        "patches:\n"
        "  - target: {kind: Role, name: agentos-secrets-sidecar}\n"
        "    patch: |-\n"
        "      - {op: replace, path: /rules/0/verbs, value: [get]}\n"
        "      - op: add\n"
        "        path: /rules/-\n"
        "        value: {apiGroups: [apps], resources: [deployments],\n"
        "                resourceNames: [agentos-federation], verbs: [patch]}\n"
    )
    run = run_check("--no-env", "--manifests", str(tmp_path), "--profile", "dev",
                    "--format", "json")
    assert run.json["findings"] == [], run.out
    assert run.code == 0


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_base_passes_its_own_checks(run_check, profile):
    """The base carries the sidecar component and the prod env itself (AGENTOS_PROFILE=prod
    on every app container), so it passes as it stands, with warnings failing too."""
    run = run_check("--no-env", "--manifests", str(K8S / "base"), "--profile", profile,
                    "--fail-on", "warning", "--format", "json")
    assert run.json["findings"] == [], run.out
    assert run.code == 0


@pytest.mark.parametrize("example", sorted(p.name for p in (K8S / "examples").iterdir())
                         if (K8S / "examples").is_dir() else [])
def test_bundled_examples_pass(run_check, env_variant, example):
    profile = "prod" if example.startswith("production") else "dev"
    args = ["--env-file", str(env_variant())] if profile == "prod" else ["--no-env"]
    run = run_check(*args, "--manifests", str(K8S / "examples" / example),
                    "--profile", profile, "--format", "json")
    assert run.json["findings"] == [], run.out


# -- input forms ----------------------------------------------------------------------------


def test_yaml_file_and_stdin_match_the_kustomization(run_check, tmp_path, monkeypatch):
    rendered = _render(MANIFEST_VARIANTS / "subpath")
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered)
    from_file = run_check("--no-env", "--manifests", str(path), "--format", "json")
    monkeypatch.setattr(sys, "stdin", io.StringIO(rendered))
    from_stdin = run_check("--no-env", "--manifests", "-", "--format", "json")
    assert from_file.rule_ids == from_stdin.rule_ids == {"AS203"}
    assert from_stdin.json["inputs"] == [{"kind": "manifests", "source": "<stdin>"}]


def test_kind_list_is_flattened(run_check, tmp_path):
    import yaml

    docs = list(yaml.safe_load_all(_render(MANIFEST_VARIANTS / "sidecar-missing")))
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs}))
    assert run_check("--no-env", "--manifests", str(path), "--format", "json").rule_ids == {
        "AS201"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "no Kubernetes objects"),
        ("---\n---\n", "no Kubernetes objects"),
        ("kind: [unclosed\n", "invalid YAML at line"),
        ("just a string\n", "not a mapping"),
        ("metadata: {name: x}\n", "has no kind"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "nothing to check"),
    ],
)
def test_unusable_yaml_is_exit_2(run_check, tmp_path, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    run = run_check("--no-env", "--manifests", str(path))
    assert run.code == 2 and expected in run.err and str(path) in run.err, run.err
    assert run.out == ""


def test_invalid_yaml_message_never_quotes_the_content(run_check, tmp_path, canary):
    path = tmp_path / "bad.yaml"
    path.write_text(f"apiVersion: v1\nkind: Secret\nstringData:\n  K: {canary.value}\n"
                    f"  L: [{canary.value}\n")
    run = run_check("--no-env", "--manifests", str(path))
    assert run.code == 2 and "line" in run.err
    canary.assert_absent(run.out, run.err)


def test_missing_manifests_path_is_exit_2(run_check, tmp_path):
    run = run_check("--no-env", "--manifests", str(tmp_path / "nope.yaml"))
    assert run.code == 2 and "nope.yaml" in run.err


def test_directory_without_kustomization_is_exit_2(run_check, tmp_path):
    run = run_check("--no-env", "--manifests", str(tmp_path))
    assert run.code == 2 and "kustomization" in run.err


def test_failing_kustomize_is_exit_2(run_check, tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    run = run_check("--no-env", "--manifests", str(tmp_path))
    assert run.code == 2 and "kubectl kustomize failed" in run.err and run.out == ""


def test_missing_kubectl_is_exit_2(run_check, monkeypatch):
    monkeypatch.setenv(kustomize.KUBECTL_ENV, "/nonexistent/kubectl")
    run = run_check("--no-env", "--manifests", str(MANIFEST_VARIANTS / "good"))
    assert run.code == 2 and kustomize.KUBECTL_ENV in run.err


def test_a_hung_kustomize_is_exit_2_and_keeps_no_partial_render(
    run_check, monkeypatch, tmp_path, canary
):
    """The timeout's exception holds what kubectl printed so far (rendered Secrets): it
    must not stay attached to the InputError as __context__."""
    fake = tmp_path / "kubectl"
    fake.write_text(f"#!/bin/sh\necho 'stringData: {{t: {canary.value}}}'\nexec sleep 30\n")
    fake.chmod(0o755)
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    monkeypatch.setattr(kustomize, "RENDER_TIMEOUT", 0.5)  # a bound, not a measurement
    with pytest.raises(kustomize.InputError, match="did not finish") as info:
        kustomize.render(str(tmp_path), str(fake))
    assert info.value.__context__ is None
    monkeypatch.setenv(kustomize.KUBECTL_ENV, str(fake))
    run = run_check("--no-env", "--manifests", str(tmp_path))
    assert run.code == 2 and "did not finish" in run.err
    canary.assert_absent(run.out, run.err)


def test_kubectl_search_order(monkeypatch, tmp_path):
    """The wheel's kubectl beside the interpreter first, then PATH, then a clear error."""
    monkeypatch.delenv(kustomize.KUBECTL_ENV, raising=False)
    assert kustomize.find_kubectl() == os.path.join(os.path.dirname(sys.executable), "kubectl")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr("sysconfig.get_path", lambda _: str(empty))
    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    on_path = tmp_path / "bin"
    on_path.mkdir()
    fake = on_path / "kubectl"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    assert kustomize.find_kubectl() == str(fake)
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(kustomize.InputError, match="kubectl not found"):
        kustomize.find_kubectl()


# -- suppressions ---------------------------------------------------------------------------


def test_ignore_flag_suppresses_and_lists(run_check):
    directory = str(MANIFEST_VARIANTS / "subpath")
    run = run_check("--no-env", "--manifests", directory, "--format", "json",
                    "--ignore", "AS203=legacy app reads the file once at start")
    assert run.code == 0
    (finding,) = run.json["findings"]
    assert finding["suppressed"] == {"reason": "legacy app reads the file once at start",
                                     "kind": "external"}
    assert run.json["summary"] == {"errors": 0, "warnings": 0, "suppressed": 1, "passed": True}
    text = run_check("--no-env", "--manifests", directory,
                     "--ignore", "AS203=legacy app reads the file once at start")
    assert "SUPPRESSED AS203" in text.out and "legacy app" in text.out


def test_annotation_suppresses_only_its_object(run_check, tmp_path):
    import yaml

    docs = list(yaml.safe_load_all(_render(MANIFEST_VARIANTS / "subpath")))
    for doc in docs:
        if doc["kind"] == "Deployment":
            doc["metadata"].setdefault("annotations", {})[
                "secrets.agentos.io/ignore"] = "AS203=migrating; AS204=not used"
    path = tmp_path / "annotated.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    run = run_check("--no-env", "--manifests", str(path), "--format", "json")
    assert run.code == 0
    (finding,) = run.json["findings"]
    assert finding["suppressed"] == {"reason": "migrating", "kind": "inSource"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("AS203", "expected RULE=reason"), ("AS203=", "needs a reason"),
     ("AS999=x", "unknown rule AS999"), ("subpath=x", "expected RULE=reason")],
)
def test_bad_ignore_is_exit_2(run_check, value, expected):
    run = run_check("--no-env", "--manifests", str(MANIFEST_VARIANTS / "subpath"),
                    "--ignore", value)
    assert run.code == 2 and expected in run.err


def test_bad_annotation_is_exit_2(run_check, tmp_path):
    import yaml

    docs = list(yaml.safe_load_all(_render(MANIFEST_VARIANTS / "subpath")))
    docs[-1]["metadata"]["annotations"] = {"secrets.agentos.io/ignore": "AS203"}
    path = tmp_path / "annotated.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    run = run_check("--no-env", "--manifests", str(path))
    assert run.code == 2 and "secrets.agentos.io/ignore" in run.err


@pytest.mark.parametrize("literals", ["['{c}']", "['A={c}', 'B {c}']"])
def test_kustomize_errors_never_quote_generator_values(run_check, tmp_path, canary, literals):
    """kustomize quotes secretGenerator input in some errors ('literal sources [VALUE]:
    invalid literal source VALUE, expected key=value'): the message is passed on with
    every generator value redacted."""
    (tmp_path / "kustomization.yaml").write_text(
        "secretGenerator:\n  - name: agentos-secrets\n    literals: "
        + literals.format(c=canary.value) + "\n")
    run = run_check("--no-env", "--manifests", str(tmp_path))
    assert run.code == 2 and "invalid literal source <redacted>" in run.err, run.err
    canary.assert_absent(run.out, run.err)
