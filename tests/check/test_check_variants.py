"""The variant library: each broken variant produces exactly its rule ID, nothing else;
the known-good baselines produce nothing. Manifest variants go through the real
``kubectl kustomize``; env variants through the real Loader and real files."""

from __future__ import annotations

import pytest
from check_lib import ENV_VARIANTS, MANIFEST_VARIANTS, env_variants, header, manifest_variants

from agentos_secrets.check.findings import RULES, Severity


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
    assert run.code == (1 if RULES[expected].severity is Severity.ERROR else 0)


def test_every_rule_has_a_variant_or_a_dedicated_test():
    """A rule without a broken example is a rule nobody has seen fire."""
    covered = {header(MANIFEST_VARIANTS / n / "kustomization.yaml", "expect")
               for n in manifest_variants()}
    covered |= {header(ENV_VARIANTS / f"{n}.env", "expect") for n in env_variants()}
    # Fired by dedicated tests: unreadable (setpriv), too large (generated), nodes.
    covered |= {"AS103", "AS105", "AS301", "AS302"}
    assert covered == set(RULES)
