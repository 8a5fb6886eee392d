"""The variant library: each broken variant produces exactly its rule ID, nothing else;
the known-good baselines produce nothing. Manifest variants go through the real
``kubectl kustomize``; env variants through the real Loader and real files."""

from __future__ import annotations

import pytest
import yaml
from check_lib import ENV_VARIANTS, MANIFEST_VARIANTS, env_variants, header, manifest_variants

from agentos_secrets.check.findings import RULES, Severity
from agentos_secrets.check.rules_env import SECRET_NAMES


def _secret_values() -> list[str]:
    """Every secret value of the library (files and Secret manifests): none may be shown."""
    values = [p.read_text().strip() for p in (ENV_VARIANTS / "files").iterdir()]
    secret = yaml.safe_load((MANIFEST_VARIANTS / "good" / "secret.yaml").read_text())
    values += list(secret["stringData"].values())
    for env_file in ENV_VARIANTS.glob("*.env"):  # secrets given as plain variables
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.removesuffix("_PREVIOUS") in SECRET_NAMES:
                values.append(value.strip())
    return [v for v in values if len(v) >= 8]


def _assert_no_value(*texts: str) -> None:
    for value in _secret_values():
        for text in texts:
            assert value not in text, "a secret value of the variant library was shown"


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_good_manifests_pass(run_check, profile):
    run = run_check("--no-env", "--manifests", str(MANIFEST_VARIANTS / "good"),
                    "--profile", profile, "--fail-on", "warning", "--format", "json")
    assert run.json["findings"] == [], run.out
    assert run.code == 0


@pytest.mark.parametrize("name", manifest_variants())
def test_manifest_variant_produces_exactly_its_rule(run_check, name):
    directory = MANIFEST_VARIANTS / name
    expected = header(directory / "kustomization.yaml", "expect")
    profile = header(directory / "kustomization.yaml", "profile")
    run = run_check("--no-env", "--manifests", str(directory), "--profile", profile,
                    "--format", "json")
    assert run.rule_ids == {expected}, run.out
    _assert_no_value(run.out, run.err)
    severity = RULES[expected].severity
    assert run.code == (1 if severity is Severity.ERROR else 0)
    if severity is Severity.WARNING:
        strict = run_check("--no-env", "--manifests", str(directory), "--profile", profile,
                           "--fail-on", "warning", "--format", "json")
        assert strict.code == 1


def test_good_env_passes(run_check, env_variant):
    run = run_check("--env-file", str(env_variant()), "--fail-on", "warning", "--format", "json")
    assert run.json["findings"] == [], run.out
    assert (run.code, run.json["profile"]) == (0, "prod")


@pytest.mark.parametrize("name", env_variants())
def test_env_variant_produces_exactly_its_rule(run_check, env_variant, name):
    expected = header(ENV_VARIANTS / f"{name}.env", "expect")
    run = run_check("--env-file", str(env_variant(name)), "--format", "json")
    assert run.rule_ids == {expected}, run.out
    _assert_no_value(run.out, run.err)
    assert run.code == (1 if RULES[expected].severity is Severity.ERROR else 0)


def test_every_rule_has_a_variant_or_a_dedicated_test():
    """A rule without a broken example is a rule nobody has seen fire."""
    covered = {header(MANIFEST_VARIANTS / n / "kustomization.yaml", "expect")
               for n in manifest_variants()}
    covered |= {header(ENV_VARIANTS / f"{n}.env", "expect") for n in env_variants()}
    # Fired by dedicated tests: unreadable (setpriv), too large (generated), nodes.
    covered |= {"AS103", "AS105", "AS301", "AS302"}
    assert covered == set(RULES)
