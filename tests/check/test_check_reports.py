"""Report formats: JSON validates against the shipped versioned schema, SARIF against
the SARIF 2.1.0 schema (vendored: no network at test time), and the canary secret
appears in no format, whatever the finding that involved it."""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml
from check_lib import MANIFEST_VARIANTS

from agentos_secrets.check.findings import RULES

HERE = Path(__file__).parent
FORMATS = ("text", "json", "sarif", "github", "junit")
#: What each canary case must find: every one of these findings was computed from the
#: canary value (or from the object holding it) and must still not show it.
EXPECTED = {
    "plain env + reused + previous + short signing key": {
        "AS109", "AS111", "AS113", "AS114", "AS115", "AS301"},
    "both set": {"AS107"},
    # (no RBAC in this stream: AS209; the Secret lacks the federation key: AS207)
    "manifest literal + placeholder Secret": {"AS205", "AS207", "AS209", "AS226"},
    "suppressed": {"AS205", "AS207", "AS209", "AS226"},
}


def _report_schema() -> dict:
    text = resources.files("agentos_secrets.check").joinpath("schema/report-v1.json").read_text()
    return json.loads(text)


def _sarif_schema() -> dict:
    return json.loads((HERE / "sarif-schema-2.1.0.json").read_text())


def _validate_json(out: str) -> dict:
    doc = json.loads(out)
    jsonschema.Draft202012Validator(
        _report_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(doc)
    return doc


def _validate_sarif(out: str) -> dict:
    doc = json.loads(out)
    jsonschema.Draft4Validator(
        _sarif_schema(), format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    ).validate(doc)
    return doc


def test_schemas_are_valid_schemas():
    jsonschema.Draft202012Validator.check_schema(_report_schema())
    jsonschema.Draft4Validator.check_schema(_sarif_schema())


def test_the_validators_reject_a_broken_report():
    """The schemas are strict enough to fail: a test that cannot fail proves nothing."""
    with pytest.raises(jsonschema.ValidationError):
        _validate_json(json.dumps({"schema": "agentos-secrets/check-report/v1"}))
    with pytest.raises(jsonschema.ValidationError):
        _validate_sarif(json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}))
    with pytest.raises(jsonschema.ValidationError):
        _validate_sarif(json.dumps({"version": "2.1.0", "runs": [], "extra": 1}))


def _cases(env_variant, tmp_path: Path, canary) -> dict[str, list[str]]:
    """Argument lists whose findings all involve the canary value somehow."""
    secret = tmp_path / "canary-secret"
    secret.write_text(canary.value + "\n")
    secret.chmod(0o600)
    docs = list(yaml.safe_load_all(
        (MANIFEST_VARIANTS / "good" / "secret.yaml").read_text()))
    docs[0]["stringData"] = {"AGENTOS_SERVICE_TOKEN": f"${{{canary.value}}}"}
    docs[0]["data"] = {"AGENTOS_SIGNING_KEY": base64.b64encode(b"fake_" + canary.value_bytes)
                       .decode()}
    deployment = yaml.safe_load((MANIFEST_VARIANTS / "good" / "deployment.yaml").read_text())
    deployment["metadata"]["namespace"] = docs[0]["metadata"]["namespace"] = "agentos"
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    env.append({"name": "AGENTOS_FED_SHARED_SECRET", "value": canary.value})
    manifest = tmp_path / "canary.yaml"
    manifest.write_text(yaml.safe_dump_all([*docs, deployment]))
    from agentos_secrets import fingerprint_bytes

    return {
        "plain env + reused + previous + short signing key": [
            "--env-file", str(env_variant(extra={
                "AGENTOS_SERVICE_TOKEN_FILE": "@UNSET@",
                "AGENTOS_SERVICE_TOKEN": canary.value,
                "AGENTOS_FED_SHARED_SECRET_FILE": str(secret),
                "AGENTOS_FED_SHARED_SECRET_PREVIOUS": canary.value,
                "AGENTOS_SIGNING_KEY_FILE": str(secret),
            })),
            "--expect-fingerprint",
            f"AGENTOS_FED_SHARED_SECRET={fingerprint_bytes(b'other node')}",
        ],
        "both set": ["--env-file", str(env_variant(extra={"AGENTOS_SIGNING_KEY": canary.value}))],
        "manifest literal + placeholder Secret": ["--no-env", "--manifests", str(manifest),
                                                  "--profile", "prod"],
        "suppressed": ["--no-env", "--manifests", str(manifest), "--profile", "prod",
                       "--ignore", "AS205=known", "--ignore", "AS226=known"],
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_canary_appears_in_no_format(run_check, env_variant, tmp_path, canary, fmt):
    for name, argv in _cases(env_variant, tmp_path, canary).items():
        run = run_check(*argv, "--format", fmt)
        assert run.code in (0, 1), (name, run.err)
        canary.assert_absent(run.out, run.err)
        if fmt == "json":
            doc = _validate_json(run.out)
            assert {f["ruleId"] for f in doc["findings"]} == EXPECTED[name]
        elif fmt == "sarif":
            doc = _validate_sarif(run.out)
            assert doc["runs"][0]["results"], name


def test_json_report_contents(run_check, env_variant):
    run = run_check("--env-file", str(env_variant("previous-equal")), "--format", "json",
                    "--fail-on", "warning")
    doc = _validate_json(run.out)
    (finding,) = doc["findings"]
    assert finding["ruleId"] == "AS114" and finding["severity"] == "warning"
    assert finding["location"]["variable"] == "AGENTOS_SIGNING_KEY_PREVIOUS"
    assert finding["help"].endswith("#as114-previous-equals-current")
    assert doc["summary"] == {"errors": 0, "warnings": 1, "suppressed": 0, "passed": False}
    assert doc["exitCode"] == run.code == 1


def test_sarif_lists_every_rule_and_points_results_at_them(run_check):
    run = run_check("--no-env", "--manifests", str(MANIFEST_VARIANTS / "subpath"),
                    "--format", "sarif", "--ignore", "AS203=reviewed")
    doc = _validate_sarif(run.out)
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(RULES)
    (result,) = doc["runs"][0]["results"]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "AS203"
    assert result["suppressions"] == [{"kind": "external", "justification": "reviewed"}]
    assert doc["runs"][0]["invocations"][0]["exitCode"] == run.code == 0
    location = result["locations"][0]
    assert location["logicalLocations"][0]["fullyQualifiedName"].startswith(
        "Deployment/agentos/agentos-federation:spec.template.spec.containers[agentos]")


def test_text_report_reads_well(run_check):
    run = run_check("--no-env", "--manifests", str(MANIFEST_VARIANTS / "subpath"))
    assert run.code == 1
    lines = run.out.splitlines()
    assert lines[0] == "agentos-secrets check: profile dev, fail on error"
    assert "ERROR    AS203 secret-subpath" in lines
    assert any(line.startswith("  fix:  Mount the whole volume") for line in lines)
    assert lines[-1] == "1 error(s), 0 warning(s), 0 suppressed: FAILED (exit 1)"


def test_output_file(run_check, tmp_path):
    out = tmp_path / "report.sarif"
    run = run_check("--no-env", "--manifests", str(MANIFEST_VARIANTS / "subpath"),
                    "--format", "sarif", "-o", str(out))
    assert run.code == 1 and run.out == ""
    _validate_sarif(out.read_text())


def test_list_rules(run_check):
    run = run_check("--list-rules")
    assert run.code == 0
    assert [line.split()[0] for line in run.out.splitlines()] == list(RULES)


@pytest.mark.parametrize("argv", [["--format", "xml"], ["--fail-on", "note"], ["--bogus"],
                                  ["--profile", "staging"]])
def test_bad_arguments_are_exit_2(run_check, argv):
    assert run_check("--no-env", *argv).code == 2

