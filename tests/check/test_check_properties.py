"""Properties over many generated values: a secret value never reaches any report format,
whatever the findings it causes; and CSPRNG-made secrets never look weak to the rules."""

from __future__ import annotations

import base64
import secrets
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentos_secrets.check.findings import Severity
from agentos_secrets.check.inputs import Environment
from agentos_secrets.check.report import Report, render
from agentos_secrets.check.rules_env import check_environment

NAMES = ("AGENTOS_SERVICE_TOKEN", "AGENTOS_FED_SHARED_SECRET", "AGENTOS_SIGNING_KEY")
# A marker prefix no report text contains, so that "absent" is a meaningful assertion.
values = st.text(alphabet=string.ascii_letters + string.digits + "-_=+/.", min_size=0,
                 max_size=60).map(lambda s: "Qv7#" + s)


def _render_all(findings, profile: str) -> str:
    report = Report(findings, profile, Severity.WARNING, [("environment", "generated")], "t")
    return "".join(render(report, fmt) for fmt in ("text", "json", "sarif", "github", "junit"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    token=values, shared=values, key=values, previous=values,
    profile=st.sampled_from(["dev", "prod"]),
    reuse=st.booleans(), same_previous=st.booleans(),
)
def test_no_value_in_any_format(token, shared, key, previous, profile, reuse, same_previous):
    if reuse:
        shared = token
    if same_previous:
        previous = key
    env = Environment({
        "AGENTOS_PROFILE": profile,
        "AGENTOS_SERVICE_TOKEN": token,
        "AGENTOS_FED_SHARED_SECRET": shared,
        "AGENTOS_SIGNING_KEY": key,
        "AGENTOS_SIGNING_KEY_PREVIOUS": previous,
        "AGENTOS_DEFAULT_TENANT": "tnt_x",
    }, None, profile)
    findings = check_environment(env)
    # prod always reports something (AS120 at least), so the rendering path is exercised;
    # in dev a set of acceptable values may rightly give no finding at all.
    assert findings or profile == "dev"
    output = _render_all(findings, profile)
    for value in {token, shared, key, previous}:
        assert value.strip() not in output


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["urlsafe", "hex", "b64"]), st.integers(min_value=32, max_value=64))
def test_csprng_secrets_are_never_weak(kind, nbytes):
    def make() -> str:
        raw = secrets.token_bytes(nbytes)
        return {"urlsafe": base64.urlsafe_b64encode(raw).decode(), "hex": raw.hex(),
                "b64": base64.b64encode(raw).decode()}[kind]

    env = Environment({
        "AGENTOS_PROFILE": "prod", "AGENTOS_METRICS_REQUIRE_AUTH": "1",
        **{f"{n}": make() for n in NAMES},
    }, None, "prod")
    ids = {f.rule.id for f in check_environment(env)}
    # AS109 (plain env var in prod) is expected here; nothing about the values may fire.
    assert ids == {"AS109"}, ids
