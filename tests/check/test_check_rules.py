"""The rule registry and its documentation agree: stable, unique IDs and names, and a
docs/rules.md section per rule with its severity, why, a bad and a good example, a fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentos_secrets.check.findings import RULES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def _sections() -> dict[str, str]:
    text = DOCS.read_text()
    parts = re.split(r"^### ", text, flags=re.MULTILINE)[1:]
    return {part.split()[0]: part for part in parts}


def test_ids_and_names_are_unique_and_well_formed():
    names = [r.name for r in RULES.values()]
    assert len(set(names)) == len(names)
    for rule_id, rule in RULES.items():
        assert re.fullmatch(r"AS[1-3]\d\d", rule_id) and rule.id == rule_id
        assert re.fullmatch(r"[a-z0-9-]+", rule.name)
        assert rule.fix.endswith(".") and "\n" not in rule.fix


def test_docs_have_exactly_the_registered_rules():
    assert list(_sections()) == list(RULES)


@pytest.mark.parametrize("rule_id", list(RULES))
def test_each_rule_is_documented_fully(rule_id):
    rule = RULES[rule_id]
    section = _sections()[rule_id]
    assert section.startswith(f"{rule_id} {rule.name}\n")
    assert f"**{rule.severity.value}**" in section
    assert ("prod only" in section) == (rule.profiles == ("prod",))
    assert "Why:" in section and "Fix:" in section
    assert re.search(r"\bbad\b", section) and re.search(r"\bgood\b", section), rule_id


def _github_anchor(heading: str) -> str:
    # GitHub's heading slug: lower-case, punctuation other than - and _ dropped, spaces -> -.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("rule_id", list(RULES))
def test_help_links_land_on_the_rule(rule_id):
    heading = _sections()[rule_id].splitlines()[0]
    assert RULES[rule_id].help_anchor == _github_anchor(heading)


def test_every_rule_carries_its_docs_section_as_help():
    """SARIF's help is the rule's section of docs/rules.md, shipped in the package (the
    packaged rules.md is that file, not a copy that could drift)."""
    from importlib.resources import files

    from agentos_secrets.check.rule_docs import rule_help

    packaged = files("agentos_secrets.check").joinpath("rules.md").read_text()
    assert packaged == (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    for rule_id, rule in RULES.items():
        text = rule_help(rule_id)
        assert text and text.startswith(f"**{rule.severity.value}**"), rule_id
        assert f"### {rule_id}" not in text  # one section, not the next one
