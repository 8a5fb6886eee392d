"""The quick-start demo: the Loader at work on a temporary, kubelet-style secret mount."""

from __future__ import annotations

import os
import tempfile

from agentos_secrets import Loader, SecretError
from agentos_secrets.testing import AtomicWriter


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="agentos-demo-") as tmp:
        volume = os.path.join(tmp, "secrets")
        writer = AtomicWriter(volume)
        writer.write(
            {
                "AGENTOS_SERVICE_TOKEN": "demo-token-generation-1",
                "AGENTOS_FED_SHARED_SECRET": "demo-federation-secret-1",
            }
        )
        key_file = os.path.join(tmp, "signing.key")
        with open(key_file, "w") as handle:
            handle.write("demo-signing-key-material-0123456789abcdef\n")
        os.chmod(key_file, 0o600)
        env = {
            "AGENTOS_SIGNING_KEY_FILE": key_file,
            "AGENTOS_DEFAULT_REGION": "local",
            "AGENTOS_FED_SHARED_SECRET": "from-env-wins",
        }
        loader = Loader(env=env, secret_dirs=[volume])
        print(f"secret volume: {volume} (generation {writer.current_generation()})")
        for name in ("AGENTOS_SERVICE_TOKEN", "AGENTOS_FED_SHARED_SECRET", "AGENTOS_SIGNING_KEY"):
            print(loader.explain(name))
        token = loader.require("AGENTOS_SERVICE_TOKEN")
        print(f"repr of a Secret: {token!r}; fingerprint {token.fingerprint()}")
        writer.write(
            {
                "AGENTOS_SERVICE_TOKEN": "demo-token-generation-2",
                "AGENTOS_FED_SHARED_SECRET": "demo-federation-secret-1",
            }
        )
        rotated = loader.require("AGENTOS_SERVICE_TOKEN")
        print(
            f"after rotation to generation {writer.current_generation()}: "
            f"fingerprint {rotated.fingerprint()} (changed: {rotated != token})"
        )
        try:
            loader.require("AGENTOS_MISSING_TOKEN")
        except SecretError as exc:
            print(f"missing secret: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
