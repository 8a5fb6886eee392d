"""deploy/k8s/rbac-rotate (the Role of ``agentos-secrets rotate``) renders and validates
strictly, like every other kustomization here. What the rules allow is tested against
the fake API server in tests/rotate/test_rotate_rbac.py."""

from __future__ import annotations

import kubernetes_validate
import pytest
from k8s_render import render
from test_k8s_validate import VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
def test_rotate_rbac_validates_strictly(version: str) -> None:
    rendered = render("rbac-rotate")
    kinds = sorted(doc["kind"] for doc in rendered.docs)
    assert kinds == ["Role", "RoleBinding", "ServiceAccount"]
    for doc in rendered.docs:
        assert doc["metadata"]["namespace"] == "agentos"
        kubernetes_validate.validate(doc, version, strict=True)
