"""Fixtures of the container tests: the image, built once per session, and its containers.

The image is built by sidecar/build-image.sh, the script behind ``make image`` (cached:
seconds when nothing changed). Where podman cannot run, every test here is skipped with
one line saying why; CI installs what they need (.ci/run).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from image_lib import Containers, build_image, remove_leftovers, why_not

from benchmarks._sidecar import Receiver


@pytest.fixture(scope="session")
def image() -> str:
    reason = why_not()
    if reason is not None:
        pytest.skip(f"container tests skipped: {reason}")
    built = build_image()
    remove_leftovers()
    return built


@pytest.fixture
def containers(image: str) -> Iterator[Containers]:
    started = Containers(image)
    try:
        yield started
    finally:
        started.remove_all()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server
