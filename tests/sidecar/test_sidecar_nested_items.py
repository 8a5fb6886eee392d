"""A Secret volume with nested item paths (``items: [{key: tls.crt, path: tls/tls.crt}]``).

The kubelet then writes ``..<gen>/tls/tls.crt`` and one top-level symlink ``tls ->
..data/tls``. A rotation swaps ``..data`` as usual; the sidecar's digest must see the
content under ``tls/``, or that rotation is never applied, not even by a re-check.
"""

from __future__ import annotations

import os

from agentos_secrets.sidecar.detect import Detector
from agentos_secrets.watch import digest


def _generation(volume, name: str, cert: str) -> None:
    os.makedirs(volume / name / "tls")
    (volume / name / "tls" / "tls.crt").write_text(cert)
    (volume / name / "token").write_text("same-token")


def _swap(volume, name: str) -> None:
    os.symlink(name, volume / "..data_tmp")
    os.rename(volume / "..data_tmp", volume / "..data")


def test_a_rotation_inside_a_nested_item_directory_is_a_change(tmp_path):
    volume = tmp_path / "vol"
    volume.mkdir()
    _generation(volume, "..2026_11_26_15_00_00.1", "cert-one")
    _swap(volume, "..2026_11_26_15_00_00.1")
    os.symlink("..data/tls", volume / "tls")
    os.symlink("..data/token", volume / "token")
    detector = Detector([str(volume)])
    before = detector.refresh()
    assert digest(str(volume)).keys == ("tls/tls.crt", "token")

    _generation(volume, "..2026_11_26_15_01_00.2", "cert-two")
    _swap(volume, "..2026_11_26_15_01_00.2")
    assert detector.refresh() != before
