"""Reading one secret file safely (files.read_secret_file) and the kubelet layout helpers.

The error catalogue lives in test_bad_inputs.py; these are the contract of the success
path: what comes back, what identity it carries, where the size limit sits exactly, and
that odd but legal reads (short reads, files that report size 0) still return everything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentos_secrets import SecretFileInsecureError, SecretFileTooLargeError
from agentos_secrets import files as files_module
from agentos_secrets.files import (
    DEFAULT_MAX_BYTES,
    FileIdentity,
    current_generation,
    decode_secret,
    file_identity,
    is_kubelet_volume,
    iter_keys,
    read_secret_file,
)
from agentos_secrets.testing import AtomicWriter


def _file(tmp_path: Path, content: bytes, mode: int = 0o600, name: str = "s") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    os.chmod(path, mode)
    return str(path)


def test_returns_trimmed_content_and_the_identity_of_what_was_read(
    tmp_path: Path, canary
) -> None:
    path = _file(tmp_path, f"\n  {canary.value}\t\n".encode())
    data, identity = read_secret_file(path, variable="X_FILE")
    assert data == canary.value_bytes
    st = os.stat(path)
    assert identity == FileIdentity(st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    assert (identity.ino, identity.size) == (st.st_ino, st.st_size)
    assert file_identity(path) == identity
    assert file_identity(str(tmp_path / "absent")) is None
    canary.assert_absent(repr(identity))


def test_strip_false_is_byte_exact(tmp_path: Path, canary) -> None:
    content = f" {canary.value}\r\n\n".encode()
    assert read_secret_file(_file(tmp_path, content), strip=False)[0] == content


def test_unicode_whitespace_is_trimmed_like_the_original(tmp_path: Path) -> None:
    # Go's strings.TrimSpace trims Unicode spaces too (NBSP, em space, ...).
    content = "\u00a0\u2003 clé \u3000\n".encode()
    assert read_secret_file(_file(tmp_path, content))[0] == "clé".encode()
    # The fast ASCII strip and the Unicode pass together trim exactly what str.strip() does.
    for text in ("\x1c x \x1f", "\x85\u00a0 a b \u2028", " \t\x0b\x0cv\r\n"):
        assert decode_secret(text.encode(), variable="X", path=None) == text.strip().encode()


def test_size_limit_is_inclusive(tmp_path: Path) -> None:
    exact = _file(tmp_path, b"k" * DEFAULT_MAX_BYTES, name="exact")
    assert len(read_secret_file(exact)[0]) == DEFAULT_MAX_BYTES
    over = _file(tmp_path, b"k" * (DEFAULT_MAX_BYTES + 1), name="over")
    with pytest.raises(SecretFileTooLargeError):
        read_secret_file(over)
    assert read_secret_file(over, max_bytes=DEFAULT_MAX_BYTES + 1)[0] == b"k" * (
        DEFAULT_MAX_BYTES + 1
    )


def test_large_file_read_in_several_chunks(tmp_path: Path) -> None:
    content = os.urandom(150_000).hex().encode()  # 300 KB of text
    path = _file(tmp_path, content)
    assert read_secret_file(path, max_bytes=1 << 20)[0] == content


def test_short_reads_still_return_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary
) -> None:
    """FUSE and NFS may return fewer bytes than asked before the end of the file."""
    content = (canary.value * 40).encode()
    path = _file(tmp_path, content)
    real_read = os.read
    sizes: list[int] = []

    def dribble(fd: int, n: int) -> bytes:
        sizes.append(n)
        return real_read(fd, min(n, 7))

    monkeypatch.setattr(files_module.os, "read", dribble)
    assert read_secret_file(path)[0] == content
    assert len(sizes) > len(content) // 7


def test_one_read_call_for_an_ordinary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, b"token-value\n")
    real_read = os.read
    calls: list[int] = []

    def counting(fd: int, n: int) -> bytes:
        calls.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(files_module.os, "read", counting)
    read_secret_file(path)
    assert calls == [len(b"token-value\n") + 1]


def test_a_file_that_reports_size_zero_is_read_to_the_end() -> None:
    """procfs reports st_size 0 for files that have content."""
    with open("/proc/version", "rb") as handle:
        expected = handle.read().strip()
    assert read_secret_file("/proc/version")[0] == expected


def test_permission_check_can_be_turned_off(tmp_path: Path) -> None:
    path = _file(tmp_path, b"v", mode=0o666)
    with pytest.raises(SecretFileInsecureError):
        read_secret_file(path)
    assert read_secret_file(path, check_permissions=False)[0] == b"v"
    assert read_secret_file(_file(tmp_path, b"v", mode=0o644, name="ok"))[0] == b"v"
    assert read_secret_file(_file(tmp_path, b"v", mode=0o400, name="ro"))[0] == b"v"


def test_validate_false_returns_raw_bytes(tmp_path: Path) -> None:
    raw = b"\x00\xff binary \n"
    assert read_secret_file(_file(tmp_path, raw), validate=False)[0] == raw


def test_symlinks_are_followed(tmp_path: Path) -> None:
    target = _file(tmp_path, b"through-a-link")
    (tmp_path / "link").symlink_to(target)
    assert read_secret_file(str(tmp_path / "link"))[0] == b"through-a-link"


def test_kubelet_layout_helpers(tmp_path: Path) -> None:
    volume = tmp_path / "secrets"
    writer = AtomicWriter(volume)
    assert not is_kubelet_volume(str(volume))
    assert current_generation(str(volume)) is None
    writer.write({"B_KEY": "b", "A_KEY": "a"})
    (volume / ".hidden").write_text("never a key")
    assert is_kubelet_volume(str(volume))
    generation = current_generation(str(volume))
    assert generation is not None and generation.startswith("..")
    assert generation == writer.current_generation()
    assert list(iter_keys(str(volume))) == ["A_KEY", "B_KEY"]  # sorted, no dot-entries
    writer.write({"A_KEY": "a2"})
    assert list(iter_keys(str(volume))) == ["A_KEY"]
    assert current_generation(str(volume)) != generation
    assert read_secret_file(str(volume / "A_KEY"))[0] == b"a2"
    assert list(iter_keys(str(tmp_path / "absent"))) == []
