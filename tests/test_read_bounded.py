"""files.read_bounded: the one reader for files that are not secret values."""

import os

import pytest

from agentos_secrets.errors import (
    SecretFileNotRegularError,
    SecretFileTooLargeError,
    SecretPathError,
)
from agentos_secrets.files import read_bounded


def test_reads_a_regular_file(tmp_path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"\xff\x00 raw bytes are returned as they are")
    assert read_bounded(str(p), what="--x", max_bytes=100).startswith(b"\xff\x00")


def test_a_fifo_fails_at_once(tmp_path) -> None:
    p = tmp_path / "fifo"
    os.mkfifo(p)
    with pytest.raises(SecretFileNotRegularError, match="--x"):
        read_bounded(str(p), what="--x", max_bytes=100)


def test_dev_zero_does_not_grow() -> None:
    with pytest.raises(SecretFileNotRegularError):
        read_bounded("/dev/zero", what="--x", max_bytes=100)


def test_too_large(tmp_path) -> None:
    p = tmp_path / "big"
    p.write_bytes(b"x" * 101)
    with pytest.raises(SecretFileTooLargeError, match="--x"):
        read_bounded(str(p), what="--x", max_bytes=100)


def test_a_relative_path_is_not_shown() -> None:
    canary = "canary-relative-path-secret"
    with pytest.raises(SecretPathError) as info:
        read_bounded(canary, what="--x", max_bytes=100)
    assert canary not in str(info.value)


def test_a_stream_that_never_ends_is_refused_in_time() -> None:
    from agentos_secrets.errors import SecretFileError
    from agentos_secrets.files import read_stream_bounded

    r, w = os.pipe()
    try:
        os.write(w, b"partial")  # the writer stays open: no end of file ever comes
        with pytest.raises(SecretFileError, match="did not reach its end"):
            read_stream_bounded(r, what="stdin", max_bytes=100, timeout=0.2)
    finally:
        os.close(r)
        os.close(w)


def test_a_stream_past_its_cap_is_refused() -> None:
    from agentos_secrets.files import read_stream_bounded

    r, w = os.pipe()
    try:
        os.write(w, b"x" * 101)
        os.close(w)
        w = -1
        with pytest.raises(SecretFileTooLargeError):
            read_stream_bounded(r, what="stdin", max_bytes=100, timeout=5)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
