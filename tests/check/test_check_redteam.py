"""Red-team pass over ``check`` (issue 11): one test per instance found, by class.

1. a secret given where a path or flag value is expected is never shown back;
2. every reader is bounded (size, depth, alias expansion, time) and never blocks;
5. a wrongly typed field is exit 2 naming object and field: no traceback, no silent pass;
6. a switch that is not understood is a finding, never silently the insecure choice;
plus the env-file parser accepting valid dotenv syntax, and the inputs/kustomize cycle.
Each test failed on the code before its fix (see the commit that adds it).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from check_lib import MANIFEST_VARIANTS
from redteam_lib import container, deployment, good_docs, run_process, set_env, write

from agentos_secrets.check import kustomize

FORMATS = ("text", "json", "sarif", "github", "junit")
CHECK_DIR = Path(__file__).resolve().parents[2] / "agentos_secrets" / "check"


def _all_formats(run_check, canary, *argv: str, code: int | None = None) -> list[str]:
    """Run ``check`` in every format; assert the canary is in none; return rule IDs seen."""
    seen: list[str] = []
    for fmt in FORMATS:
        run = run_check(*argv, "--format", fmt)
        canary.assert_absent(run.out, run.err)
        if code is not None:
            assert run.code == code, (fmt, run.err)
        if fmt == "json" and run.out:
            seen = sorted(run.rule_ids)
    return seen


# -- class 1: a secret where a path or a flag value is expected -----------------------------


def test_manifest_file_var_holding_the_token_is_not_shown(run_check, tmp_path, canary):
    """The issue's example: AGENTOS_SERVICE_TOKEN_FILE holds the token (AS206)."""
    docs = good_docs()
    set_env(container(docs, "agentos"), "AGENTOS_SERVICE_TOKEN_FILE", canary.value)
    ids = _all_formats(run_check, canary, "--no-env", "--manifests", str(write(tmp_path, docs)),
                       "--profile", "dev", code=1)
    assert ids == ["AS206"]


def test_manifest_peers_file_holding_a_secret_is_not_shown(run_check, tmp_path, canary):
    docs = good_docs()
    set_env(container(docs, "agentos"), "AGENTOS_PEERS_FILE", canary.value)
    ids = _all_formats(run_check, canary, "--no-env", "--manifests", str(write(tmp_path, docs)),
                       "--profile", "prod", code=1)
    assert "AS223" in ids


def test_sidecar_token_file_flag_holding_a_secret_is_not_shown(run_check, tmp_path, canary):
    docs = good_docs()
    sidecar = container(docs, "secrets-sidecar")
    sidecar["args"] = ["--token-file", canary.value]
    ids = _all_formats(run_check, canary, "--no-env", "--manifests", str(write(tmp_path, docs)),
                       "--profile", "dev", code=1)
    assert ids == ["AS209"]


def test_env_peers_file_holding_a_secret_is_not_shown(run_check, env_variant, canary):
    env_file = env_variant(None, {"AGENTOS_PEERS_FILE": canary.value})
    ids = _all_formats(run_check, canary, "--env-file", str(env_file), code=1)
    assert ids == ["AS123"]


@pytest.mark.parametrize("argv", [
    ["--format", "{c}"],
    ["--profile", "{c}"],
    ["--fail-on", "{c}"],
    ["--no-env", "{c}"],                       # a stray argument
    ["--no-env", "--bogus={c}"],               # an unknown flag with a value
    ["--expect-fingerprint", "{c}"],           # the secret instead of NAME=FP
    ["--expect-fingerprint", "{c}=fp1:zz"],    # base64 padding looks like NAME=
    ["--env-file", "{c}"],                     # a value in place of a path
    ["--no-env", "--manifests", "{c}"],
    ["--no-env", "--manifests", str(MANIFEST_VARIANTS / "good"), "-o", "{c}/report"],
])
def test_argument_errors_never_echo_a_value(run_check, canary, argv):
    run = run_check(*[a.format(c=canary.value) for a in argv])
    assert run.code == 2, run.err
    assert run.err.strip()
    canary.assert_absent(run.out, run.err)


def test_kubectl_variable_holding_a_secret_is_not_shown(run_check, monkeypatch, canary):
    monkeypatch.setenv(kustomize.KUBECTL_ENV, canary.value)
    run = run_check("--no-env", "--manifests", str(MANIFEST_VARIANTS / "good"))
    assert run.code == 2 and kustomize.KUBECTL_ENV in run.err
    canary.assert_absent(run.out, run.err)


def test_yaml_errors_never_quote_tags_or_anchors(run_check, tmp_path, canary):
    for text in (f"kind: Secret\ndata: *{canary.value}\n",
                 f"kind: Secret\ndata: !{canary.value} x\n"):
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        run = run_check("--no-env", "--manifests", str(path))
        assert run.code == 2 and "invalid YAML" in run.err
        canary.assert_absent(run.out, run.err)


# -- class 2: unbounded time or memory ------------------------------------------------------


def _bomb(levels: int = 12, width: int = 10) -> str:
    lines = ["kind: List", "anchors:", "  - &a0 {kind: ConfigMap, metadata: {name: x}}"]
    for i in range(1, levels):
        lines.append(f"  - &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"items: [*a{levels - 1}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_of_list_items_is_refused_quickly(tmp_path):
    """The issue's example: a few hundred bytes whose aliases expand kind: List items
    exponentially (10^11 objects here) used to stall check --manifests -."""
    text = _bomb()
    assert len(text) < 1000
    proc = run_process(["--no-env", "--manifests", "-"], stdin=open(_file(tmp_path, text)))
    assert proc.returncode == 2, proc.stderr
    assert "<stdin>" in proc.stderr and "expand beyond" in proc.stderr


def test_alias_bomb_in_a_secret_provider_class_stays_bounded(run_check, tmp_path):
    """SecretProviderClass parameters.objects is YAML inside a string: it is parsed with
    the same bounds as the stream. (A guard, not an old failure: the old walker happened
    to look at the top level only.)"""
    docs = good_docs()
    pod = deployment(docs)["spec"]["template"]["spec"]
    pod["volumes"][0] = {"name": "agentos-secrets", "csi": {
        "driver": "secrets-store.csi.k8s.io", "readOnly": True,
        "volumeAttributes": {"secretProviderClass": "agentos-secrets"}}}
    docs.append({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
                 "metadata": {"name": "agentos-secrets", "namespace": "agentos"},
                 "spec": {"provider": "aws", "parameters": {
                     "objects": _bomb().replace("kind: List\n", "")}}})
    proc = run_process(["--no-env", "--manifests", str(write(tmp_path, docs)),
                        "--format", "json"])
    assert proc.returncode in (0, 1), proc.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("kind: List\nitems: &a [*a]\n", "refers to a node containing it"),
    ("a: " + "[" * 100 + "]" * 100 + "\n", "nested deeper"),
    ("kind: ConfigMap\n---\n" * 10_001, "more than 10000 YAML documents"),
    ("kind: List\nitems: 7\n", "items is a number, expected a list"),
])
def test_hostile_yaml_shapes_are_exit_2(run_check, tmp_path, text, expected):
    run = run_check("--no-env", "--manifests", str(_file(tmp_path, text)))
    assert run.code == 2 and expected in run.err, run.err
    assert "Traceback" not in run.err


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "input.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("flag", ["--env-file", "--manifests"])
def test_a_fifo_input_fails_at_once(tmp_path, flag):
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    argv = [flag, str(fifo)] if flag == "--env-file" else ["--no-env", flag, str(fifo)]
    proc = run_process(argv)
    assert proc.returncode == 2 and "FIFO" in proc.stderr, proc.stderr


@pytest.mark.parametrize("flag", ["--env-file", "--manifests"])
def test_dev_zero_as_a_file_input_is_refused(tmp_path, flag):
    argv = [flag, "/dev/zero"] if flag == "--env-file" else ["--no-env", flag, "/dev/zero"]
    proc = run_process(argv)
    assert proc.returncode == 2 and "/dev/zero" in proc.stderr, proc.stderr


def test_endless_stdin_is_refused_at_the_cap():
    with open("/dev/zero", "rb") as zero:
        proc = run_process(["--no-env", "--manifests", "-"], stdin=zero)
    assert proc.returncode == 2 and "larger than the limit" in proc.stderr, proc.stderr


def test_an_oversized_env_file_is_refused(run_check, tmp_path):
    path = tmp_path / "big.env"
    path.write_text("AGENTOS_PROFILE=dev\n" + "# padding\n" * 120_000)
    run = run_check("--env-file", str(path))
    assert run.code == 2 and "larger than the limit" in run.err


def test_endless_kustomize_output_is_cut_off(tmp_path, monkeypatch, canary):
    """kubectl kustomize's stdout is capped like any other input; what it printed
    (possibly Secret data) is not kept."""
    fake = tmp_path / "kubectl"
    fake.write_text(f"#!/bin/sh\nwhile :; do echo 'stringData: {{t: {canary.value}}}'; done\n")
    fake.chmod(0o755)
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    proc = run_process(["--no-env", "--manifests", str(tmp_path)],
                       env={kustomize.KUBECTL_ENV: str(fake)})
    assert proc.returncode == 2 and "printed more than" in proc.stderr, proc.stderr
    canary.assert_absent(proc.stdout, proc.stderr)


def test_redaction_does_not_block_on_a_fifo_generator_source(tmp_path):
    """A failing render makes check read the generator sources to redact kustomize's
    message: a FIFO named there must not hang it."""
    os.mkfifo(tmp_path / "secret.env")
    (tmp_path / "kustomization.yaml").write_text(
        "secretGenerator:\n  - name: agentos-secrets\n    envs: [secret.env]\n"
        "resources: [missing.yaml]\n")
    proc = run_process(["--no-env", "--manifests", str(tmp_path)])
    assert proc.returncode == 2 and "kubectl kustomize failed" in proc.stderr, proc.stderr


# -- class 5: wrongly typed input -----------------------------------------------------------

_APP = "spec.template.spec.containers[agentos]"
_SIDECAR = "spec.template.spec.initContainers[secrets-sidecar]"


def _mutate(path: list[object], value: object):
    def apply(docs):
        node = deployment(docs) if path[0] == "Deployment" else next(
            d for d in docs if d["kind"] == path[0])
        for key in path[1:-1]:
            if isinstance(key, str) and isinstance(node, list):
                node = next(x for x in node if x.get("name") == key)
            else:
                node = node[key]
        node[path[-1]] = value
        return docs
    return apply


TYPE_CASES = [
    # (mutation, field named in the message)
    (["Deployment", "spec", "template", "spec", "containers", "agentos", "env", 7],
     f"{_APP}.env"),
    (["Deployment", "spec", "template", "spec", "containers", "agentos", "env", ["A=1"]],
     f"{_APP}.env[0]"),
    (["Deployment", "spec", "template", "spec", "containers", {}], "spec.template.spec.containers"),
    (["Deployment", "spec", "template", "spec", "containers", "agentos", "volumeMounts",
      "agentos-secrets", "readOnly", "true"],
     f"{_APP}.volumeMounts[agentos-secrets].readOnly"),
    (["Deployment", "spec", "template", "spec", "containers", "agentos", "env",
      "AGENTOS_PROFILE", "valueFrom", 7], f"{_APP}.env[AGENTOS_PROFILE].valueFrom"),
    (["Deployment", "spec", "template", "spec", "containers", "agentos", "env",
      "AGENTOS_METRICS_REQUIRE_AUTH", "value", 1],
     f"{_APP}.env[AGENTOS_METRICS_REQUIRE_AUTH].value"),
    (["Deployment", "spec", "template", "spec", "volumes", "sidecar-token", "projected",
      "sources", 7], "spec.template.spec.volumes[sidecar-token].projected.sources"),
    (["Deployment", "spec", "template", "spec", "initContainers", "secrets-sidecar", "args",
      "--action"], f"{_SIDECAR}.args"),
    (["Deployment", "spec", "template", "spec", "shareProcessNamespace", "yes"],
     "spec.template.spec.shareProcessNamespace"),
    (["Deployment", "metadata", "annotations", {"secrets.agentos.io/ignore": 7}],
     "metadata.annotations[secrets.agentos.io/ignore]"),
    (["Deployment", "metadata", "name", ["x"]], "metadata.name"),
    (["Secret", "data", ["AGENTOS_SERVICE_TOKEN"]], "data"),
    (["Secret", "immutable", "false"], "immutable"),
    (["Role", "rules", 0, "verbs", "get,patch"], "rules[0].verbs"),
    (["RoleBinding", "subjects", {"kind": "ServiceAccount"}], "subjects"),
    (["ConfigMap", "data", "peers.seed.json", 5], "data[peers.seed.json]"),
]


@pytest.mark.parametrize(("mutation", "field"), TYPE_CASES,
                         ids=[f for _, f in TYPE_CASES])
def test_wrong_types_are_exit_2_naming_object_and_field(run_check, tmp_path, mutation, field):
    path, value = mutation[:-1], mutation[-1]
    docs = _mutate(path, value)(good_docs())
    run = run_check("--no-env", "--manifests", str(write(tmp_path, docs)), "--profile", "dev")
    assert run.code == 2, (run.code, run.out, run.err)
    assert f": {field} is " in run.err and "expected" in run.err, run.err
    assert f"{path[0]}/agentos/" in run.err or "?" in run.err, run.err


def test_wrong_types_in_a_kustomization_do_not_break_redaction(run_check, tmp_path):
    (tmp_path / "kustomization.yaml").write_text(
        "resources: 7\nsecretGenerator:\n  - {name: x, literals: 5, envs: {a: 1}}\n")
    run = run_check("--no-env", "--manifests", str(tmp_path))
    assert run.code == 2 and "kubectl kustomize failed" in run.err, run.err


# -- class 6: fail-open switches --------------------------------------------------------------


def _messages(run) -> dict[str, str]:
    return {f["ruleId"]: f["message"] for f in run.json["findings"]}


def test_metrics_auth_true_says_what_the_sidecar_does(run_check, env_variant):
    run = run_check("--env-file", str(env_variant("metrics-auth")), "--format", "json")
    message = _messages(run)["AS122"]
    assert '"true"' in message and "sidecar reads it as on" in message
    assert "requires exactly 1" in message


@pytest.mark.parametrize(("variable", "value", "rule_ids"), [
    ("AGENTOS_METRICS_REQUIRE_AUTH", "ture", {"AS116", "AS122"}),
    ("AGENTOS_ALLOW_DEV_HEADERS", "true", {"AS121"}),
    ("AGENTOS_ALLOW_DEV_HEADERS", "ture", {"AS116"}),
    ("AGENTOS_PROFILE", "production", {"AS116"}),
    ("AGENTOS_SIDECAR_SEND_FINGERPRINT", "maybe", {"AS116"}),
])
def test_switches_not_understood_are_findings(run_check, env_variant, variable, value,
                                              rule_ids):
    run = run_check("--env-file", str(env_variant(None, {variable: value})),
                    "--profile", "prod", "--format", "json")
    assert run.code == 1 and run.rule_ids == rule_ids, run.out
    if value not in ("true",):
        assert value not in run.out  # an unknown word is described, never quoted


@pytest.mark.parametrize(("name", "where", "value"), [
    ("AGENTOS_SIDECAR_ACTION", "secrets-sidecar", "sig nal"),
    ("AGENTOS_SIDECAR_LOG_LEVEL", "secrets-sidecar", "verbose"),
    ("AGENTOS_SIDECAR_DEBOUNCE", "secrets-sidecar", "20"),  # above max-wait's default
    ("AGENTOS_SIDECAR_LOG_FORMAT", "secrets-sidecar", "yaml"),
    ("AGENTOS_METRICS_REQUIRE_AUTH", "secrets-sidecar", "ture"),
    ("AGENTOS_PROFILE", "agentos", "production"),
])
def test_manifest_switches_not_understood_are_as212(run_check, tmp_path, name, where, value):
    docs = good_docs()
    set_env(container(docs, where), name, value)
    run = run_check("--no-env", "--manifests", str(write(tmp_path, docs)), "--profile", "dev",
                    "--format", "json")
    assert run.rule_ids == {"AS212"}, run.out
    assert run.code == 1


def test_sidecar_action_argument_is_read_as_the_sidecar_reads_it(run_check, tmp_path):
    """The sidecar matches its words ignoring case (``Rollout`` is ``rollout``), so
    ``check`` must neither report it nor lose the rollout rules (AS209) behind it."""
    docs = good_docs()
    container(docs, "secrets-sidecar")["args"] = ["--action=Rollout"]
    run = run_check("--no-env", "--manifests", str(write(tmp_path, docs)), "--format", "json")
    assert run.rule_ids == set(), run.out
    docs = good_docs()
    container(docs, "secrets-sidecar")["args"] = ["--action=Rollout"]
    docs[:] = [d for d in docs if d.get("kind") != "RoleBinding"]
    run = run_check("--no-env", "--manifests", str(write(tmp_path, docs)), "--format", "json")
    assert run.rule_ids == {"AS209"}, run.out


# -- dotenv syntax ----------------------------------------------------------------------------


def test_env_file_with_a_byte_order_mark(run_check, env_variant):
    env_file = env_variant()
    env_file.write_bytes(b"\xef\xbb\xbf" + env_file.read_bytes())
    run = run_check("--env-file", str(env_file), "--format", "json")
    assert run.code == 0 and run.json["findings"] == [], run.err


def test_env_file_quoted_value_followed_by_a_comment(tmp_path):
    from agentos_secrets.check.inputs import load_env_file

    path = tmp_path / "x.env"
    path.write_text('A="one two" # a comment\nB=\'x\'   # another\nC="a\\nb"\n'
                    'D="multi\nline"\nexport E=5\nBARE\n')
    assert load_env_file(str(path)) == {"A": "one two", "B": "x", "C": "a\nb",
                                        "D": "multi\nline", "E": "5"}


def test_env_file_line_numbers_survive_blank_lines_and_multiline_values(run_check, env_variant):
    env_file = env_variant()
    lines = env_file.read_text().splitlines()
    text = "\n\n# comment\nAGENTOS_NOTE=\"two\nlines\"\n\n" + "\n".join(lines) + \
        "\nAGENTOS_DEFAULT_TENANT=tnt_x\n"
    env_file.write_text(text)
    run = run_check("--env-file", str(env_file), "--format", "json")
    (finding,) = run.json["findings"]
    assert finding["ruleId"] == "AS120"
    expected = text.splitlines().index("AGENTOS_DEFAULT_TENANT=tnt_x") + 1
    assert finding["location"]["line"] == expected


# -- issue 13: no import cycle ----------------------------------------------------------------


def _imports(module: str) -> set[str]:
    tree = ast.parse((CHECK_DIR / f"{module}.py").read_text())
    return {node.module or "" for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1}


def test_inputs_and_kustomize_do_not_import_each_other():
    assert "kustomize" not in _imports("inputs") or "inputs" not in _imports("kustomize")
    assert "inputs" not in _imports("kustomize")


# -- class 2, second pass: quadratic time on crafted values ----------------------------------


def test_placeholder_judging_is_linear_on_a_value_of_template_marks(tmp_path):
    """AS226 judged a Secret value with a regular expression that rescanned from every
    ``{{``: 600 KB of them never finished."""
    docs = good_docs()
    secret = next(d for d in docs if d["kind"] == "Secret")
    secret.pop("data", None)
    secret["stringData"] = {"AGENTOS_SERVICE_TOKEN": "{{" * 300_000,
                            "AGENTOS_FED_SHARED_SECRET": "x", "AGENTOS_SIGNING_KEY": "y"}
    proc = run_process(["--no-env", "--manifests", str(write(tmp_path, docs)),
                        "--profile", "prod", "--format", "json"])
    assert proc.returncode == 1 and "AS226" in proc.stdout, proc.stderr


def test_suppression_parsing_is_linear_on_long_blanks(tmp_path):
    docs = good_docs()
    deployment(docs)["metadata"]["annotations"] = {
        "secrets.agentos.io/ignore": "AS201=x" + " " * 300_000 + "y"}
    proc = run_process(["--no-env", "--manifests", str(write(tmp_path, docs))])
    assert proc.returncode == 0, proc.stderr


def test_env_file_with_a_huge_run_of_blanks_is_refused_quickly(tmp_path):
    """Comment stripping (dotenv's, and the old hand-written one) is quadratic in a run
    of blanks: such a line is refused, naming it."""
    path = tmp_path / "blanks.env"
    path.write_text("AGENTOS_PROFILE=dev\nAGENTOS_X=x" + " " * 200_000 + "y\n")
    proc = run_process(["--env-file", str(path)])
    assert proc.returncode == 2 and "line 2: a run of more than 256" in proc.stderr, proc.stderr


def test_kustomize_error_with_endless_escaped_quotes_is_redacted_quickly(tmp_path, canary):
    fake = tmp_path / "kubectl"
    line = '"' + '\\"' * 30_000  # one backslash each: no quote ever closes
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' '{line}' >&2\nexit 1\n")
    fake.chmod(0o755)
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    proc = run_process(["--no-env", "--manifests", str(tmp_path)],
                       env={kustomize.KUBECTL_ENV: str(fake)})
    assert proc.returncode == 2 and "kubectl kustomize failed" in proc.stderr, proc.stderr


def test_kustomize_error_is_withheld_when_generators_are_too_large(tmp_path, canary):
    (tmp_path / "big.txt").write_text(canary.value + "\n" + "x" * (1 << 20))
    files = ", ".join(["big.txt"] * 12)
    (tmp_path / "kustomization.yaml").write_text(
        f"secretGenerator:\n  - name: agentos-secrets\n    files: [{files}]\n"
        "resources: [missing.yaml]\n")
    fake = tmp_path / "kubectl"
    fake.write_text(f"#!/bin/sh\necho 'error: bad input {canary.value}' >&2\nexit 1\n")
    fake.chmod(0o755)
    proc = run_process(["--no-env", "--manifests", str(tmp_path)],
                       env={kustomize.KUBECTL_ENV: str(fake)})
    assert proc.returncode == 2 and "withheld" in proc.stderr, proc.stderr
    canary.assert_absent(proc.stdout, proc.stderr)


def test_names_cannot_forge_lines_of_the_text_report(run_check, tmp_path):
    docs = good_docs()
    forged = "0 error(s), 0 warning(s), 0 suppressed: passed (exit 0)"
    deployment(docs)["metadata"]["name"] = f"x\n{forged}\n"
    set_env(container(docs, "agentos"), "AGENTOS_SERVICE_TOKEN_FILE", "/nowhere/token")
    run = run_check("--no-env", "--manifests", str(write(tmp_path, docs)))
    assert run.code == 1
    assert forged not in run.out.splitlines()


# -- class 5, second pass: digits that are not ASCII, numbers at their limits -----------------


@pytest.mark.parametrize(("where", "value"), [
    ("annotation", "²"),                  # str.isdigit() is True, int() refuses it
    ("listen", "0.0.0.0:²"),
])
def test_non_ascii_digits_in_ports_are_not_a_traceback(run_check, tmp_path, where, value):
    docs = good_docs()
    if where == "annotation":
        deployment(docs)["spec"]["template"]["metadata"]["annotations"] = {
            "rotate.agentos.dev/status-port": value}
    else:
        set_env(container(docs, "secrets-sidecar"), "AGENTOS_SIDECAR_LISTEN", value)
    run = run_check("--no-env", "--manifests", str(write(tmp_path, docs)), "--format", "json")
    assert run.code in (0, 1), run.err


@pytest.mark.parametrize(("name", "value"), [
    ("AGENTOS_SIDECAR_DEBOUNCE", "inf"), ("AGENTOS_SIDECAR_RESYNC", "nan"),
    ("AGENTOS_SIDECAR_TIMEOUT", "1e999"), ("AGENTOS_SIDECAR_RESYNC", "0"),
    ("AGENTOS_SIDECAR_MAX_PER_HOUR", "1.5"), ("AGENTOS_SIDECAR_MAX_PER_HOUR", "9" * 5000),
    ("AGENTOS_SIDECAR_BACKOFF_MAX", "-1"), ("AGENTOS_SIDECAR_GRACE_PERIOD", "soon"),
    ("AGENTOS_SIDECAR_LISTEN", "9095"), ("AGENTOS_SIDECAR_LISTEN", "0.0.0.0:99999"),
])
def test_sidecar_numbers_at_their_limits_are_as212(run_check, tmp_path, name, value):
    docs = good_docs()
    set_env(container(docs, "secrets-sidecar"), name, value)
    run = run_check("--no-env", "--manifests", str(write(tmp_path, docs)), "--format", "json")
    assert run.rule_ids == {"AS212"} and run.code == 1, run.out + run.err


def test_a_stalled_stdin_is_refused_after_its_time_limit(monkeypatch):
    """A pipe that never ends (a producer that hangs) is refused at the deadline (here a
    short one: a bound, not a measurement), not waited on forever."""
    from agentos_secrets.check.errors import InputError
    from agentos_secrets.check.reading import read_stdin

    read_end, write_end = os.pipe()
    os.write(write_end, b"kind: ConfigMap\n")
    with os.fdopen(read_end, "r") as stream:
        monkeypatch.setattr("sys.stdin", stream)
        with pytest.raises(InputError, match=r"did not reach its end in 0\.5 s"):
            read_stdin("--manifests", 1 << 20, timeout=0.5)
    os.close(write_end)


def test_a_terminal_as_stdin_is_refused(monkeypatch):
    from agentos_secrets.check.errors import InputError
    from agentos_secrets.check.reading import read_stdin

    controller, terminal = os.openpty()
    try:
        with os.fdopen(terminal, "r") as stream:
            monkeypatch.setattr("sys.stdin", stream)
            with pytest.raises(InputError, match="is a terminal"):
                read_stdin("--manifests", 1 << 20)
    finally:
        os.close(controller)
