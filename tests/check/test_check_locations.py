"""Every finding points at the file and line to change, in every format.

The manifest variants go through the real ``kubectl kustomize``: a finding made by a
patch points at the patch (its operation, or its field), one in a base resource at the
field in that file, all relative to ``--root``. YAML files and stdin point at the field
itself (line and column from the YAML node marks), env files at the variable's line.
"""

from __future__ import annotations

import io
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from check_lib import MANIFEST_VARIANTS, header, manifest_variants

from agentos_secrets.check.ci_formats import escape_data, escape_property
from agentos_secrets.check.inputs import load_manifests

GOOD = "good/deployment.yaml"
#: variant -> (rule, file relative to the variants, line, column). A patch's finding
#: points at its JSON-patch operation (``- op:`` on line 13, or 14 after a longer
#: header); a finding about a field the base has points at that field in the base.
EXPECTED = {
    "envfrom-secret": ("AS205", "envfrom-secret/kustomization.yaml", 13, 9),
    "file-in-configmap": ("AS206", "file-in-configmap/kustomization.yaml", 13, 9),
    "file-outside-volume": ("AS206", "file-outside-volume/kustomization.yaml", 13, 9),
    "immutable-secret": ("AS211", "immutable-secret/kustomization.yaml", 13, 9),
    # the patch narrows the volume's items; the variable to fix is in the base
    "items-missing-key": ("AS207", GOOD, 60, 15),
    "missing-key": ("AS207", "missing-key/kustomization.yaml", 13, 9),
    "mount-writable": ("AS204", "mount-writable/kustomization.yaml", 13, 9),  # a remove
    "no-token": ("AS209", GOOD, 17, 7),
    "prod-default-tenant": ("AS220", "prod-default-tenant/kustomization.yaml", 13, 9),
    "prod-dev-headers": ("AS221", "prod-dev-headers/kustomization.yaml", 13, 9),
    "prod-guard-in-dev-check": ("AS220", "prod-guard-in-dev-check/kustomization.yaml", 14, 9),
    "prod-latest": ("AS224", "prod-latest/kustomization.yaml", 13, 9),
    "prod-metrics-auth": ("AS222", "prod-metrics-auth/kustomization.yaml", 13, 9),
    "prod-peers-unmounted": ("AS223", GOOD, 56, 15),
    "prod-placeholder-secret": ("AS226", "prod-placeholder-secret/kustomization.yaml", 13, 9),
    "prod-profile-dev": ("AS225", "prod-profile-dev/kustomization.yaml", 13, 9),
    "rbac-missing": ("AS209", GOOD, 17, 7),
    "rbac-no-patch": ("AS209", GOOD, 17, 7),
    "rbac-wrong-name": ("AS209", GOOD, 17, 7),
    "secretkeyref": ("AS205", "secretkeyref/kustomization.yaml", 13, 9),
    "sidecar-action-unknown": ("AS212", "sidecar-action-unknown/kustomization.yaml", 13, 9),
    "sidecar-init-blocks": ("AS202", "sidecar-init-blocks/kustomization.yaml", 13, 9),
    "sidecar-missing": ("AS201", GOOD, 45, 7),
    "sidecar-no-volume": ("AS208", "sidecar-no-volume/kustomization.yaml", 13, 9),
    "sidecar-status-loopback": ("AS213", "sidecar-status-loopback/kustomization.yaml", 13, 9),
    "signal-no-shared-pid": ("AS210", GOOD, 16, 5),
    "subpath": ("AS203", "subpath/kustomization.yaml", 13, 9),
}


def test_the_table_covers_every_variant():
    assert set(EXPECTED) == set(manifest_variants())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_variant_points_at_the_file_and_line_to_change(run_check, name):
    directory = MANIFEST_VARIANTS / name
    profile = header(directory / "kustomization.yaml", "profile")
    rule, file, line, column = EXPECTED[name]
    run = run_check("--no-env", "--manifests", str(directory), "--profile", profile,
                    "--root", str(MANIFEST_VARIANTS), "--format", "json")
    (finding,) = run.json["findings"]
    location = finding["location"]
    assert (finding["ruleId"], location["file"], location["line"], location["column"]) == (
        rule, file, line, column), run.out
    text = (MANIFEST_VARIANTS / file).read_text().splitlines()[line - 1]
    assert text[column - 1:column] not in ("", " ")  # the column is on the field itself
    # the same spot in the other formats
    spot = f"{file}:{line}:{column}"
    assert spot in run_check("--no-env", "--manifests", str(directory), "--profile", profile,
                             "--root", str(MANIFEST_VARIANTS)).out
    github = run_check("--no-env", "--manifests", str(directory), "--profile", profile,
                       "--root", str(MANIFEST_VARIANTS), "--format", "github").out
    assert f"file={escape_property(file)},line={line},col={column}," in github
    sarif = run_check("--no-env", "--manifests", str(directory), "--profile", profile,
                      "--root", str(MANIFEST_VARIANTS), "--format", "sarif").out
    physical = yaml.safe_load(sarif)["runs"][0]["results"][0]["locations"][0][
        "physicalLocation"]
    assert physical == {"artifactLocation": {"uri": file, "uriBaseId": "SRCROOT"},
                        "region": {"startLine": line, "startColumn": column}}


def test_paths_are_relative_to_the_working_directory_by_default(run_check, monkeypatch):
    monkeypatch.chdir(MANIFEST_VARIANTS.parent)
    run = run_check("--no-env", "--manifests", "manifests/subpath", "--format", "json")
    assert run.json["findings"][0]["location"]["file"] == "manifests/subpath/kustomization.yaml"


def _line_of(text: str, needle: str, after: int = 0) -> tuple[int, int]:
    """(line, column) of the first ``needle`` at or after line ``after`` (1-based)."""
    for number, line in enumerate(text.splitlines(), 1):
        if number >= after and needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(needle)


def _two_documents() -> str:
    docs = yaml.safe_load_all((MANIFEST_VARIANTS / "good" / "deployment.yaml").read_text())
    (deployment,) = list(docs)
    mount = deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]
    mount["subPath"] = "AGENTOS_SERVICE_TOKEN"
    del mount["readOnly"]
    return ("# a comment\n---\n" + (MANIFEST_VARIANTS / "good" / "peers.yaml").read_text()
            + "---\n" + yaml.safe_dump(deployment, sort_keys=False))


def _findings(run) -> dict[str, tuple[str, int, int]]:
    return {f["ruleId"]: (f["location"]["file"], f["location"]["line"],
                          f["location"]["column"]) for f in run.json["findings"]}


def test_a_yaml_file_points_at_the_field(run_check, tmp_path):
    """Not line 1, not the document's first line: the field's own line and column."""
    text = _two_documents()
    path = tmp_path / "app.yaml"
    path.write_text(text)
    run = run_check("--no-env", "--manifests", str(path), "--root", str(tmp_path),
                    "--format", "json")
    mount = _line_of(text, "- name: agentos-secrets", _line_of(text, "  containers:")[0])
    found = _findings(run)
    assert (found["AS203"], found["AS204"]) == (
        ("app.yaml", *_line_of(text, "subPath: AGENTOS_SERVICE_TOKEN")),
        ("app.yaml", mount[0], mount[1] + 2),  # no readOnly: the mount item
    )
    # (no Secret and no RBAC in this file: AS206 at the variable, AS209 at the account)
    assert found["AS209"] == ("app.yaml", *_line_of(text, "serviceAccountName:"))
    out = run_check("--no-env", "--manifests", str(path), "--root", str(tmp_path)).out
    assert "app.yaml:{}:{}".format(*_line_of(text, "subPath: AGENTOS")) in out


def test_stdin_points_at_the_field(run_check, monkeypatch):
    text = _two_documents()
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    run = run_check("--no-env", "--manifests", "-", "--format", "json")
    assert _findings(run)["AS203"] == ("<stdin>", *_line_of(text, "subPath: AGENTOS"))


def test_a_list_item_points_at_the_field(run_check, tmp_path):
    docs = list(yaml.safe_load_all(_two_documents()))
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs[1:]},
                          sort_keys=False)
    path = tmp_path / "list.yaml"
    path.write_text(text)
    run = run_check("--no-env", "--manifests", str(path), "--root", str(tmp_path),
                    "--format", "json")
    assert _findings(run)["AS203"] == ("list.yaml", *_line_of(text, "subPath: AGENTOS"))


def test_an_env_file_points_at_the_variable(run_check, env_variant):
    env_file = env_variant("default-tenant")
    run = run_check("--env-file", str(env_file), "--root", str(env_file.parent.parent),
                    "--format", "json")
    line = _line_of(env_file.read_text(), "AGENTOS_DEFAULT_TENANT=")[0]
    assert _findings(run) == {
        "AS120": (f"{env_file.parent.name}/{env_file.name}", line, 1)}


def _kustomization(tmp_path: Path, text: str, **files: str) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    for name in ("deployment.yaml", "secret.yaml", "rbac.yaml", "peers.yaml"):
        (base / name).write_text((MANIFEST_VARIANTS / "good" / name).read_text())
    (base / "kustomization.yaml").write_text(
        "namespace: agentos\nresources: [secret.yaml, rbac.yaml, peers.yaml, "
        "deployment.yaml]\n")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(text)
    for name, content in files.items():
        (overlay / name.replace("_", ".")).write_text(content)
    return overlay


def test_a_patch_file_is_pointed_at(run_check, tmp_path):
    """Strategic-merge and JSON patches given by path: the patch file, at the field (or
    the operation); kustomize's namePrefix does not lose the resource file."""
    overlay = _kustomization(
        tmp_path,
        "resources: [../base]\nnamePrefix: x-\npatches:\n  - path: mount.yaml\n"
        "  - path: image.json.yaml\n    target: {kind: Deployment}\n",
        mount_yaml="apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
        "  name: agentos-federation\nspec:\n  template:\n    spec:\n      containers:\n"
        "        - name: agentos\n          volumeMounts:\n            - name: agentos-secrets\n"
        "              mountPath: /etc/agentos/secrets\n              readOnly: false\n",
        image_json_yaml="- op: replace\n  path: /spec/template/spec/containers/0/image\n"
        "  value: busybox\n")
    run = run_check("--no-env", "--manifests", str(overlay), "--profile", "prod",
                    "--root", str(tmp_path), "--format", "json")
    found = _findings(run)
    assert found["AS204"] == ("overlay/mount.yaml", 13, 15)
    assert found["AS224"][:2] == ("overlay/image.json.yaml", 1)
    # the prefix breaks the RBAC's resourceNames: AS209 points into the base file still
    assert found["AS209"] == ("base/deployment.yaml", 17, 7)


def test_a_generated_secret_points_at_its_generator(run_check, tmp_path):
    overlay = _kustomization(
        tmp_path,
        "resources: [../base]\nsecretGenerator:\n  - name: agentos-secrets\n"
        "    behavior: replace\n    options: {immutable: true}\n"
        "    literals: [AGENTOS_SERVICE_TOKEN=x, AGENTOS_FED_SHARED_SECRET=y,"
        " AGENTOS_SIGNING_KEY=z]\n")
    run = run_check("--no-env", "--manifests", str(overlay), "--root", str(tmp_path),
                    "--format", "json")
    assert _findings(run)["AS211"][0] in ("overlay/kustomization.yaml", "base/secret.yaml")


def test_provenance_annotations_never_reach_the_rules(tmp_path):
    manifests = load_manifests(str(MANIFEST_VARIANTS / "subpath"))
    for obj in manifests.objects:
        assert not any("kubernetes.io/" in key for key in obj.annotations), obj.ref
        assert obj.provenance is not None
    deployment = next(manifests.of_kind("Deployment"))
    assert deployment.provenance.origin == str(MANIFEST_VARIANTS / "good" / "deployment.yaml")
    assert deployment.provenance.patched_in[-1] == str(
        MANIFEST_VARIANTS / "subpath" / "kustomization.yaml")


# -- the CI formats -----------------------------------------------------------------------------


def test_workflow_command_escaping():
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_a_hostile_name_cannot_start_a_workflow_command(run_check, tmp_path):
    text = _two_documents().replace("name: agentos-federation",
                                    'name: "x,y:z%\\n::add-mask::w\\r::stop-commands::t"', 1)
    path = tmp_path / "evil.yaml"
    path.write_text(text)
    out = run_check("--no-env", "--manifests", str(path), "--root", str(tmp_path),
                    "--format", "github").out
    lines = out.rstrip("\n").split("\n")
    assert all(re.match(r"::(error|warning) file=evil\.yaml,line=\d+,col=\d+,title=AS2\d\d "
                        r"[a-z-]+::", line) for line in lines[:-1]), out
    assert "::add-mask::" not in out.replace("%0A::add-mask::", "")


def test_junit_has_a_case_per_rule_and_object(run_check, tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(_two_documents())
    run = run_check("--no-env", "--manifests", str(path), "--root", str(tmp_path),
                    "--format", "junit", "--ignore", "AS204=known")
    suite = ET.fromstring(run.out.split("\n", 1)[1]).find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failed = cases["AS203 secret-subpath: Deployment/agentos-federation"]
    assert failed.find("failure") is not None and failed.get("file") == "app.yaml"
    assert "app.yaml:" in failed.find("failure").text
    skipped = cases["AS204 secret-mount-writable: Deployment/agentos-federation"]
    assert skipped.find("skipped") is not None
    assert cases["AS211 secret-immutable"].find("failure") is None  # a passing rule
    assert int(suite.get("tests")) == len(cases)
    failures = [c for c in cases.values() if c.find("failure") is not None]
    as_json = run_check("--no-env", "--manifests", str(path), "--format", "json",
                        "--ignore", "AS204=known").json
    active = {(f["ruleId"], f["location"]["object"]) for f in as_json["findings"]
              if f["suppressed"] is None}
    assert int(suite.get("failures")) == len(failures) == len(active) >= 1
    assert suite.get("skipped") == "1"


def test_an_inline_strategic_merge_patch_points_at_its_field(run_check, tmp_path):
    """Inside a block scalar, nested lines keep their column: indentation counts once."""
    text = ("resources: [../base]\npatches:\n  - patch: |-\n      apiVersion: apps/v1\n"
            "      kind: Deployment\n      metadata:\n        name: agentos-federation\n"
            "      spec:\n        template:\n          spec:\n            containers:\n"
            "              - name: agentos\n                volumeMounts:\n"
            "                  - name: agentos-secrets\n"
            "                    mountPath: /etc/agentos/secrets\n"
            "                    subPath: AGENTOS_SERVICE_TOKEN\n")
    overlay = _kustomization(tmp_path, text)
    run = run_check("--no-env", "--manifests", str(overlay), "--root", str(tmp_path),
                    "--format", "json")
    assert _findings(run)["AS203"] == ("overlay/kustomization.yaml",
                                       *_line_of(text, "subPath: AGENTOS"))
