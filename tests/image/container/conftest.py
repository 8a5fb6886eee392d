"""The container tests need root, podman, runc and mmdebstrap: without them, this whole
directory is skipped with one line saying why (.ci/run installs them, so CI runs it)."""

import pytest
from image_lib import why_not

_REASON = why_not()
if _REASON is not None:
    pytest.skip(f"container tests (tests/image/container) skipped: {_REASON}",
                allow_module_level=True)
