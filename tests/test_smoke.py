from __future__ import annotations

import os

from agentos_secrets import Loader


def test_file_secret_resolves_and_masks(tmp_path, canary):
    path = tmp_path / "token"
    path.write_text(canary.value + "\n")
    os.chmod(path, 0o600)
    loader = Loader(env={"AGENTOS_SERVICE_TOKEN_FILE": str(path)})
    secret = loader.require("AGENTOS_SERVICE_TOKEN")
    assert secret.reveal() == canary.value
    explanation = loader.explain("AGENTOS_SERVICE_TOKEN")
    canary.assert_absent(repr(secret), str(secret), f"{secret}", explanation)
