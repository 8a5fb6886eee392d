"""Property-based red-team pass, one per parser of ``check`` (issue 11), each bounded in
examples (no timing assertions): whatever the input, the outcome is exit 0 or 1 with a
report, or exit 2 with one ``error:`` line; never a traceback, never a value echoed.

Parsers: the env file (python-dotenv), the YAML stream, the typed fields of manifests
(every walked field replaced by every kind of value), the command line, and the
kustomization read to redact kustomize's errors.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redteam_lib import container, deployment, good_docs

from agentos_secrets.check import kustomize
from agentos_secrets.check.cli import main
from agentos_secrets.check.inputs import InputError, parse_yaml_stream

#: A value no report text contains, planted wherever a secret could be.
MARK = "Qv7mark9secret"
FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _assert_outcome(code: int, out: str, err: str, fmt: str = "text") -> None:
    assert code in (0, 1, 2), code
    assert "Traceback" not in err and MARK not in out and MARK not in err
    if code == 2:
        assert err.count("agentos-secrets check: error: ") == 1 and out == "", err
    elif fmt == "github":
        # one workflow command per finding, then the summary: nothing else can be a command
        *commands, summary = out.rstrip("\n").split("\n")
        assert all(re.match(r"::(error|warning) [^:]*::", c) for c in commands), out
        assert summary.startswith("agentos-secrets check:"), out
    elif fmt == "junit":
        import xml.etree.ElementTree as ET

        assert ET.fromstring(out.split("\n", 1)[1]).tag == "testsuites"
    else:
        assert out.startswith("agentos-secrets check:") or out.startswith("{"), out


# -- the env file -------------------------------------------------------------------------------

_names = st.sampled_from([
    "AGENTOS_PROFILE", "AGENTOS_SERVICE_TOKEN", "AGENTOS_SERVICE_TOKEN_FILE",
    "AGENTOS_SIGNING_KEY", "AGENTOS_METRICS_REQUIRE_AUTH", "AGENTOS_ALLOW_DEV_HEADERS",
    "AGENTOS_PEERS_FILE", "AGENTOS_SERVICE", "AGENTOS_DEFAULT_TENANT",
    "AGENTOS_SIDECAR_SEND_FINGERPRINT", "export AGENTOS_X", "'AGENTOS_Q'", "A B", "#",
])
_values = st.one_of(
    st.sampled_from(["prod", "dev", "1", "true", "ture", " 1", "", "federation",
                     "/etc/agentos/x", "@MARK@"]),
    st.text(alphabet="ab #'\"\\=$\t{}\r", max_size=12).map(lambda s: "@MARK@" + s),
)
_line = st.one_of(
    st.builds(lambda n, q, v, tail: f"{n}={q}{v}{q}{tail}", _names,
              st.sampled_from(["", "'", '"']), _values,
              st.sampled_from(["", " # c", "#x", " ", "'", '"'])),
    st.sampled_from(["", "# comment", "   ", "BARE", "\ufeff"]),
    st.text(max_size=20).map(lambda s: s + "@MARK@"),
)


@FUZZ
@given(lines=st.lists(_line, max_size=12), newline=st.sampled_from(["\n", "\r\n", "\r"]),
       profile=st.sampled_from([[], ["--profile", "prod"], ["--profile", "dev"]]),
       fmt=st.sampled_from(["text", "json", "sarif", "github", "junit"]))
def test_env_file_parser_never_crashes_or_echoes(lines, newline, profile, fmt):
    text = newline.join(lines).replace("@MARK@", MARK)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.env"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _assert_outcome(*_run("--env-file", str(path), *profile, "--format", fmt), fmt)


@FUZZ
@given(data=st.binary(max_size=200))
def test_env_file_bytes_never_crash(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.env"
        path.write_bytes(b"AGENTOS_PROFILE=dev\n" + data)
        _assert_outcome(*_run("--env-file", str(path)))


# -- the YAML stream ----------------------------------------------------------------------------

_yaml_text = st.text(alphabet="&*ab[]{}:-\n !|>'\"#,?%@`~\t01kind:List items", max_size=120)


@FUZZ
@given(text=_yaml_text)
def test_yaml_stream_parser_only_refuses_with_input_errors(text):
    try:
        parse_yaml_stream(text, "fuzz")
    except InputError as exc:
        assert str(exc).startswith("fuzz")


# -- every walked field, every kind of value ----------------------------------------------------

def _rich_docs() -> list[dict[str, Any]]:
    """The good variant plus the fields it does not use, so that every field check walks
    exists somewhere to be replaced."""
    docs = good_docs()
    pod = deployment(docs)["spec"]["template"]["spec"]
    pod["shareProcessNamespace"] = True
    pod["volumes"] += [
        {"name": "csi", "csi": {"driver": "secrets-store.csi.k8s.io",
                                "volumeAttributes": {"secretProviderClass": "spc"}}},
        {"name": "proj", "projected": {"sources": [
            {"secret": {"name": "agentos-secrets",
                        "items": [{"key": "AGENTOS_SIGNING_KEY", "path": "k"}]}},
            {"configMap": {"name": "agentos-peers"}}]}},
        {"name": "cm", "configMap": {"name": "agentos-peers",
                                     "items": [{"key": "peers.seed.json", "path": "p"}]}},
    ]
    app = container(docs, "agentos")
    app["ports"] = [{"name": "http", "containerPort": 8083}]
    app["envFrom"] = [{"configMapRef": {"name": "agentos-peers"}, "prefix": "P_"},
                      {"secretRef": {"name": "other"}}]
    app["env"] += [{"name": "FROM_CM", "valueFrom": {
        "configMapKeyRef": {"name": "agentos-peers", "key": "peers.seed.json"}}}]
    app["volumeMounts"] += [{"name": "proj", "mountPath": "/p", "readOnly": True,
                             "subPath": "k"}]
    sidecar = container(docs, "secrets-sidecar")
    sidecar["args"] = ["--log-level", "INFO", "--send-fingerprint=true"]
    docs += [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "x", "namespace": "agentos"},
         "automountServiceAccountToken": False},
        {"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
         "metadata": {"name": "spc", "namespace": "agentos"},
         "spec": {"parameters": {"objects": "- objectName: a\n  objectAlias: b\n"}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "crb"},
         "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "agentos"}],
         "roleRef": {"kind": "ClusterRole", "name": "cr"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "cr"},
         "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]},
    ]
    return docs


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


RICH = _rich_docs()
PATHS = [p for p in _paths(RICH) if len(p) >= 2]


def test_the_rich_base_is_checked_not_refused():
    """The fuzzing below starts from a stream check evaluates (exit 0 or 1, never 2),
    so that a refusal is caused by the mutation."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rich.yaml"
        path.write_text(yaml.safe_dump_all(RICH))
        code, _out, err = _run("--no-env", "--manifests", str(path), "--format", "json")
    assert code in (0, 1) and err == "", err

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([math.inf, -math.inf, math.nan, 0.5]),
    st.sampled_from(["", "1", "true", "ture", "/etc/agentos/secrets", "Signal", MARK,
                     "agentos-secrets", "--action"]),
)
# MARK is planted as values, not as mapping keys: a key is a name (a Secret's data key, an
# annotation), which a finding may name, as `kubectl describe secret` lists a Secret's keys
# and never its values.
_shapes = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["name", "value", "key", "path", "secret", "K9"]),
                    inner, max_size=3)), max_leaves=6)


@FUZZ
@given(picks=st.lists(st.tuples(st.sampled_from(PATHS), _shapes), min_size=1, max_size=3),
       profile=st.sampled_from(["dev", "prod"]))
def test_any_shape_of_any_walked_field_is_a_report_or_exit_2(picks, profile):
    docs = yaml.safe_load(yaml.safe_dump(RICH))  # a deep copy
    for path, value in picks:
        node: Any = docs
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier pick replaced a parent: this path is gone
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        code, out, err = _run("--no-env", "--manifests", str(path), "--profile", profile,
                              "--format", "json")
    _assert_outcome(code, out, err)
    if code == 2:
        assert str(path) in err


# -- the command line ---------------------------------------------------------------------------

_tokens = st.one_of(
    st.sampled_from(["--env-file", "--no-env", "--profile", "prod", "dev", "--manifests", "-",
                     "--expect-fingerprint", "--format", "json", "sarif", "--fail-on",
                     "warning", "--list-rules", "--help-me", "AGENTOS_SIGNING_KEY=fp1:0",
                     "=", "--", ""]),
    st.text(alphabet="-=abAS1:/ \t", max_size=8).map(lambda s: MARK + s),
)


@FUZZ
@given(argv=st.lists(_tokens, max_size=6))
def test_any_command_line_is_a_report_or_exit_2(argv):
    if "-" in argv:
        argv = [a for a in argv if a != "-"]  # stdin is the runner's; see the stdin tests
    code, out, err = _run(*argv)
    assert code in (0, 1, 2) and MARK not in out + err and "Traceback" not in err


# -- the kustomization read for redaction -------------------------------------------------------

_kustomization = st.dictionaries(
    st.sampled_from(["resources", "components", "bases", "secretGenerator",
                     "configMapGenerator"]),
    st.recursive(_scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["name", "literals", "envs", "env", "files"]),
                        inner, max_size=3)), max_leaves=8),
    max_size=4,
)


@FUZZ
@given(doc=_kustomization)
def test_redaction_reads_any_kustomization_without_crashing(doc):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(doc))
        message = kustomize.redact(f"error: literal {MARK}", tmp)
    assert message.startswith("error:")


def _walked_schema(doc: dict[str, Any], path: tuple[Any, ...]) -> Any:
    """The schema :mod:`agentos_secrets.check.shapes` gives the field at ``path`` of a
    document, or None when no rule walks it."""
    from agentos_secrets.check import shapes

    kind_schema = shapes.SCHEMAS.get(doc.get("kind"), {})
    schema: Any = {**shapes.METADATA, **kind_schema}
    for key in path:
        if isinstance(schema, dict) and isinstance(key, str) and key in schema:
            schema = schema[key]
        elif isinstance(schema, shapes.Seq) and isinstance(key, int):
            schema = schema.item
        elif isinstance(schema, shapes.Map) and isinstance(key, str):
            schema = schema.value
        else:
            return None
    return schema


_wrong = st.one_of(st.booleans(), st.integers(min_value=-(2**64), max_value=2**64),
                   st.sampled_from([math.inf, math.nan, 1.5]), st.text(max_size=4),
                   st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(path=st.sampled_from(PATHS), value=_wrong)
def test_a_walked_field_of_the_wrong_type_is_exit_2_never_a_pass(path, value):
    """The oracle is the schema's type for the field: the property checks that every walk
    enforces it (no silent pass), the test above that no walk crashes."""
    from agentos_secrets.check import shapes

    docs = yaml.safe_load(yaml.safe_dump(RICH))
    node: Any = docs
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    schema = _walked_schema(RICH[path[0]], path[1:])
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "fuzz.yaml"
        file.write_text(yaml.safe_dump_all(docs))
        code, out, err = _run("--no-env", "--manifests", str(file), "--format", "json")
    _assert_outcome(code, out, err)
    if schema is not None and not shapes._matches(value, schema):
        assert code == 2 and " is " in err and "expected" in err, (path, err, out[:300])
