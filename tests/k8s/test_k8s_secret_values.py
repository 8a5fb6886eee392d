"""Secret values in the manifests: where they may appear, and what a new value changes.

A value put into the local-dev Secret (here the canary) must land in the Secret's data
and nowhere else: no pod template, annotation, ConfigMap or kubectl message carries it.
And because the local-dev generator keeps the Secret's name (disableNameSuffixHash), a
new value changes the Secret alone: every pod template stays byte-for-byte the same, so
the change reaches the pods as a rotation of the mounted files, not as a kustomize-made
rollout onto a renamed Secret (which the hash-suffixed counterpart below shows).
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import yaml
from k8s_render import K8S, SECRET_KEYS, Obj, kubectl


def _render_with_values(tmp: Path, values: dict[str, str], *, on: str) -> tuple[list[Obj], str]:
    """Render a throw-away kustomization on ``deploy/k8s/<on>`` with these Secret values."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    base = os.path.relpath(K8S / on, tmp)
    (tmp / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {base}\n"
        "secretGenerator:\n  - name: agentos-secrets\n    namespace: agentos\n"
        "    envs: [secrets.env]\n"
        + ("    behavior: replace\n" if on == "overlays/local-dev" else "")
    )
    proc = subprocess.run([str(kubectl()), "kustomize", str(tmp)], capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d], proc.stdout + proc.stderr


def _values(token: str) -> dict[str, str]:
    return {key: (token if key == "AGENTOS_SERVICE_TOKEN" else f"other-{key}")
            for key in SECRET_KEYS}


def _deployments(docs: list[Obj]) -> list[Obj]:
    return [d for d in docs if d["kind"] == "Deployment"]


def test_a_value_lives_only_in_the_secret_data(tmp_path: Path, canary) -> None:
    docs, output = _render_with_values(tmp_path, _values(canary.value), on="overlays/local-dev")
    encoded = base64.b64encode(canary.value_bytes).decode()
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "agentos-secrets"
    assert secret["data"]["AGENTOS_SERVICE_TOKEN"] == encoded
    others = yaml.safe_dump_all([d for d in docs if d is not secret])
    canary.assert_absent(others)
    assert encoded not in others
    # The rendered text holds the value only in its base64 form, inside the Secret.
    canary.assert_absent(output)
    assert output.count(encoded) == 1


def test_a_new_value_changes_no_pod_template(tmp_path: Path, canary) -> None:
    before, _ = _render_with_values(tmp_path / "a", _values(canary.value),
                                    on="overlays/local-dev")
    after, _ = _render_with_values(tmp_path / "b", _values("rotated-value"),
                                   on="overlays/local-dev")
    assert _deployments(before) == _deployments(after)
    assert [d for d in before if d["kind"] == "Secret"] != [
        d for d in after if d["kind"] == "Secret"]


def test_with_a_name_hash_a_new_value_would_rename_the_secret(tmp_path: Path) -> None:
    """The trade-off local-dev avoids: hash-suffixed names rewrite every pod template."""
    before, _ = _render_with_values(tmp_path / "a", _values("one"), on="base")
    after, _ = _render_with_values(tmp_path / "b", _values("two"), on="base")
    names = {d["metadata"]["name"] for d in before + after if d["kind"] == "Secret"}
    assert len(names) == 2 and all(n.startswith("agentos-secrets-") for n in names)
    assert _deployments(before) != _deployments(after)
