"""GitHub code scanning accepts the SARIF of every bundled variant.

Microsoft's SARIF Multitool (the validator GitHub points to) runs with the SARIF and
GitHub rule sets (``validate --rule-kind "Sarif;Gh"``) over the SARIF ``check`` writes
for every manifest and env variant and the known-good baselines: it must report nothing,
neither an error nor a warning. Installed from the npm registry into ``.tools/`` by
:mod:`sarif_tool`; where it cannot be installed the test is skipped with the reason.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sarif_tool
from check_lib import MANIFEST_VARIANTS, env_variants, header, manifest_variants


@pytest.fixture(scope="module")
def multitool() -> Path:
    path, why = sarif_tool.ensure()
    if path is None:
        pytest.skip(f"SARIF Multitool not available: {why}")
    return path


def _write(run, target: Path, *argv: str) -> None:
    result = run(*argv, "--format", "sarif")
    assert result.code in (0, 1), result.err
    target.write_text(result.out)


def test_code_scanning_accepts_the_sarif_of_every_variant(multitool, run_check, env_variant,
                                                          tmp_path):
    out = tmp_path / "sarif"
    out.mkdir()
    repo = Path(__file__).resolve().parents[2]
    for name in ["good", *manifest_variants()]:
        directory = MANIFEST_VARIANTS / name
        profile = header(directory / "kustomization.yaml", "profile") or "prod"
        _write(run_check, out / f"manifests-{name}.sarif", "--no-env", "--manifests",
               str(directory), "--profile", profile, "--root", str(repo))
    for name in [None, *env_variants()]:
        env_file = env_variant(name)
        _write(run_check, out / f"env-{name or 'good'}.sarif", "--env-file", str(env_file),
               "--root", str(env_file.parent))
    # a YAML file, with findings pointing at fields
    _write(run_check, out / "file.sarif", "--no-env", "--manifests",
           str(MANIFEST_VARIANTS / "good" / "deployment.yaml"), "--root", str(repo))
    log = tmp_path / "validation.sarif"
    done = subprocess.run(
        [str(multitool), "validate", "--rule-kind", "Sarif;Gh", "--log", "ForceOverwrite",
         "-o", str(log), *sorted(str(p) for p in out.iterdir())],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(log.read_text())["runs"][0].get("results", [])
    problems = [(r["ruleId"], r.get("level", "warning"), r["message"].get("arguments"))
                for r in results if r.get("level", "warning") in ("error", "warning")]
    assert problems == [], problems
    assert len(list(out.iterdir())) == len(manifest_variants()) + len(env_variants()) + 3
