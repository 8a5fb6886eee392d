"""Fixtures for the ``rotate`` tests: the fake API server and a kubeconfig for it.

Helpers live in rotate_helpers.py: a module named ``conftest`` is ambiguous to import
from (every test directory has one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_apiserver import FakeApiServer, TlsFiles, make_tls
from rotate_helpers import KEY, NS, OLD, OPERATOR_TOKEN, OTHER, SECRET, write_kubeconfig


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def api(tls: TlsFiles) -> Iterator[FakeApiServer]:
    with FakeApiServer(tls, token=OPERATOR_TOKEN) as server:
        server.accept_token(OPERATOR_TOKEN, user="system:serviceaccount:agentos:rotate")
        server.put_secret(NS, SECRET, {KEY: OLD, "AGENTOS_FED_SHARED_SECRET": OTHER})
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", {"main": api})


