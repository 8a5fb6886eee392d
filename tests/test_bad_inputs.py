"""The bad-input catalogue: every way a secret can be unusable, and the error it gets.

Each case builds one broken input around the canary value (in the file, the variable or
the provider's answer wherever there is content) and asserts three things about the
error: its type, that its message names the variable and/or the path, and that the
canary is nowhere: not in ``str``/``repr``, not in the formatted traceback, not in any
chained exception, not in ``explain()``, not in a log line or captured output (the
``canary`` fixture checks the last two).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentos_secrets import (
    ConflictError,
    InvalidNameError,
    Loader,
    ProviderError,
    Secret,
    SecretEncodingError,
    SecretError,
    SecretFileInsecureError,
    SecretFileNotFoundError,
    SecretFileNotRegularError,
    SecretFilePermissionError,
    SecretFileTooLargeError,
    SecretPathError,
    SecretValueError,
)
from agentos_secrets.testing import AtomicWriter

NAME = "AGENTOS_SERVICE_TOKEN"
FILE_VAR = NAME + "_FILE"


class _Hung(Exception):
    pass


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """Turn a hang (a FIFO read, an endless /dev/zero) into a failure, not a stuck CI job.

    This is a watchdog, not a timing assertion: the bound is far above any honest run.
    """

    def _alarm(signum: int, frame: object) -> None:
        raise _Hung("the read blocked: a bad input must fail at once")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 10.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _secret_file(tmp_path: Path, content: bytes, *, name: str = "token", mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    os.chmod(path, mode)
    return str(path)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def assert_clean(exc: BaseException, canary: object, loader: Loader | None = None) -> None:
    """The canary is absent from everything a user or a log pipeline could see."""
    texts: list[object] = ["".join(traceback.format_exception(exc))]
    for link in _chain(exc):
        texts += [str(link), repr(link), *map(repr, link.args)]
    canary.assert_absent(*texts)  # type: ignore[attr-defined]
    if loader is not None:
        try:
            explanation = loader.explain(NAME)
        except SecretError as again:  # an invalid name cannot even be explained
            canary.assert_absent(str(again))  # type: ignore[attr-defined]
        else:
            canary.assert_absent(str(explanation), json.dumps(explanation.as_dict()))  # type: ignore[attr-defined]
            assert explanation.error is None or explanation.error == str(exc)


# -- the catalogue ---------------------------------------------------------------------
# Each builder returns (loader, name to require, expected type, strings the message names).
Built = tuple[Loader, str, type[SecretError], tuple[str, ...]]
Builder = Callable[[Path, str], Built]


def _file_case(path: str, exc: type[SecretError], **loader_kw: object) -> Built:
    loader = Loader(env={FILE_VAR: path}, **loader_kw)  # type: ignore[arg-type]
    return loader, NAME, exc, (FILE_VAR, path)


def fifo(tmp: Path, value: str) -> Built:
    path = str(tmp / "fifo")
    os.mkfifo(path, 0o600)
    return _file_case(path, SecretFileNotRegularError)


def directory(tmp: Path, value: str) -> Built:
    path = tmp / "dir"
    path.mkdir()
    (path / NAME).write_text(value)
    return _file_case(str(path), SecretFileNotRegularError)


def dev_zero(tmp: Path, value: str) -> Built:
    return _file_case("/dev/zero", SecretFileNotRegularError)


def dev_null(tmp: Path, value: str) -> Built:
    return _file_case("/dev/null", SecretFileNotRegularError)


def unix_socket(tmp: Path, value: str) -> Built:
    path = str(tmp / "sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.close()  # the socket file stays; opening it fails with ENXIO
    return _file_case(path, SecretFileNotRegularError)


def missing_file(tmp: Path, value: str) -> Built:
    return _file_case(str(tmp / "absent"), SecretFileNotFoundError)


def dangling_symlink(tmp: Path, value: str) -> Built:
    path = tmp / "link"
    path.symlink_to(tmp / "gone")
    return _file_case(str(path), SecretFileNotFoundError)


def symlink_loop(tmp: Path, value: str) -> Built:
    (tmp / "a").symlink_to(tmp / "b")
    (tmp / "b").symlink_to(tmp / "a")
    return _file_case(str(tmp / "a"), SecretFileNotFoundError)


def parent_is_a_file(tmp: Path, value: str) -> Built:
    parent = _secret_file(tmp, value.encode())
    return _file_case(parent + "/token", SecretFileNotFoundError)


def world_writable(tmp: Path, value: str) -> Built:
    return _file_case(_secret_file(tmp, value.encode(), mode=0o666), SecretFileInsecureError)


def group_writable(tmp: Path, value: str) -> Built:
    return _file_case(_secret_file(tmp, value.encode(), mode=0o620), SecretFileInsecureError)


def too_large_default(tmp: Path, value: str) -> Built:
    content = (value.encode() * 4096)[: 64 * 1024 + 1]
    return _file_case(_secret_file(tmp, content), SecretFileTooLargeError)


def too_large_custom_limit(tmp: Path, value: str) -> Built:
    return _file_case(_secret_file(tmp, value.encode()), SecretFileTooLargeError, max_bytes=8)


def grows_while_read(tmp: Path, value: str) -> Built:
    # procfs files report st_size 0 and then deliver more: exactly a file that grew after
    # fstat. The size check must hold on what was read, not on what fstat promised.
    return _file_case("/proc/self/status", SecretFileTooLargeError, max_bytes=16)


def bad_utf8(tmp: Path, value: str) -> Built:
    return _file_case(_secret_file(tmp, value.encode() + b"\xff\xfe"), SecretEncodingError)


def nul_byte(tmp: Path, value: str) -> Built:
    return _file_case(_secret_file(tmp, value.encode() + b"\0tail"), SecretValueError)


def empty_file(tmp: Path, value: str) -> Built:
    return _file_case(_secret_file(tmp, b""), SecretValueError)


def whitespace_only_file(tmp: Path, value: str) -> Built:
    return _file_case(_secret_file(tmp, b" \t\r\n  \n"), SecretValueError)


def both_set_on_conflict_error(tmp: Path, value: str) -> Built:
    path = _secret_file(tmp, value.encode())
    loader = Loader(env={NAME: value, FILE_VAR: path}, on_conflict="error")
    return loader, NAME, ConflictError, (NAME, FILE_VAR)


def relative_path(tmp: Path, value: str) -> Built:
    _secret_file(tmp, value.encode())
    loader = Loader(env={FILE_VAR: "token"})
    return loader, NAME, SecretPathError, (FILE_VAR,)


def secret_set_in_file_var(tmp: Path, value: str) -> Built:
    # The most common mistake: the secret itself in NAME_FILE. Not an absolute path, so
    # the error names the variable and never echoes its value.
    loader = Loader(env={FILE_VAR: value})
    return loader, NAME, SecretPathError, (FILE_VAR,)


def path_with_nul(tmp: Path, value: str) -> Built:
    loader = Loader(env={FILE_VAR: str(tmp) + "/tok\0en"})
    return loader, NAME, SecretPathError, (FILE_VAR,)


def file_var_points_at_kubelet_volume(tmp: Path, value: str) -> Built:
    volume = tmp / "secrets"
    AtomicWriter(volume).write({NAME: value})
    return _file_case(str(volume), SecretFileNotRegularError)


def directory_key_is_a_directory(tmp: Path, value: str) -> Built:
    (tmp / NAME).mkdir()
    (tmp / NAME / "inner").write_text(value)
    loader = Loader(env={}, secret_dirs=[tmp])
    return loader, NAME, SecretFileNotRegularError, (str(tmp / NAME),)


def kubelet_key_dangling(tmp: Path, value: str) -> Built:
    volume = tmp / "secrets"
    writer = AtomicWriter(volume)
    writer.write({NAME: value})
    shutil.rmtree(volume / str(writer.current_generation()))  # ..data now points nowhere
    loader = Loader(env={}, secret_dirs=[volume])
    return loader, NAME, SecretFileNotFoundError, (str(volume / NAME),)


def env_value_with_nul(tmp: Path, value: str) -> Built:
    return Loader(env={NAME: value + "\0x"}), NAME, SecretValueError, (NAME,)


def env_value_undecodable(tmp: Path, value: str) -> Built:
    # What os.environ holds for a byte that is not UTF-8 (surrogateescape).
    return Loader(env={NAME: value + "\udcff"}), NAME, SecretEncodingError, (NAME,)


def env_value_lone_surrogate(tmp: Path, value: str) -> Built:
    # A custom mapping can hold a surrogate that os.environ never would: encoding it
    # raised a UnicodeEncodeError whose ``object`` (in its args) was the whole value.
    return Loader(env={NAME: value + "\ud800"}), NAME, SecretEncodingError, (NAME,)


def _named(bad_name: str, shown: tuple[str, ...]) -> Builder:
    def build(tmp: Path, value: str) -> Built:
        return Loader(env={bad_name.strip() or "X": value}), bad_name, InvalidNameError, shown

    build.__name__ = f"name_{bad_name!r}"
    return build


def _provider_case(answer: Callable[[str], object], exc: type[SecretError]) -> Built:
    return Loader(env={}, provider=answer), NAME, exc, (NAME,)


def provider_raising(tmp: Path, value: str) -> Built:
    def provider(name: str) -> str:
        raise RuntimeError(f"vault said: {value}")

    return _provider_case(provider, ProviderError)


def provider_raising_keyerror(tmp: Path, value: str) -> Built:
    def provider(name: str) -> str:
        return {"OTHER": value}[name]  # KeyError carries the name; its context, the dict

    return _provider_case(provider, ProviderError)


def provider_wrong_type(tmp: Path, value: str) -> Built:
    return _provider_case(lambda name: {"token": value}, ProviderError)


def provider_empty(tmp: Path, value: str) -> Built:
    return _provider_case(lambda name: "", SecretValueError)


def provider_whitespace(tmp: Path, value: str) -> Built:
    return _provider_case(lambda name: "  \n\t", SecretValueError)


def provider_bytes_bad_utf8(tmp: Path, value: str) -> Built:
    return _provider_case(lambda name: value.encode() + b"\xc3", SecretEncodingError)


def provider_str_lone_surrogate(tmp: Path, value: str) -> Built:
    return _provider_case(lambda name: value + "\ud800", SecretEncodingError)


def provider_secret_with_nul(tmp: Path, value: str) -> Built:
    return _provider_case(lambda name: Secret(value + "\0"), SecretValueError)


CATALOGUE: list[Builder] = [
    fifo,
    directory,
    dev_zero,
    dev_null,
    unix_socket,
    missing_file,
    dangling_symlink,
    symlink_loop,
    parent_is_a_file,
    world_writable,
    group_writable,
    too_large_default,
    too_large_custom_limit,
    grows_while_read,
    bad_utf8,
    nul_byte,
    empty_file,
    whitespace_only_file,
    both_set_on_conflict_error,
    relative_path,
    secret_set_in_file_var,
    path_with_nul,
    file_var_points_at_kubelet_volume,
    directory_key_is_a_directory,
    kubelet_key_dangling,
    env_value_with_nul,
    env_value_undecodable,
    env_value_lone_surrogate,
    _named("", ()),
    _named("   \t", ()),
    _named("AGENTOS SERVICE TOKEN", ("AGENTOS SERVICE TOKEN",)),
    _named("1AGENTOS_TOKEN", ("1AGENTOS_TOKEN",)),
    _named("AGENTOS-SERVICE-TOKEN", ("AGENTOS-SERVICE-TOKEN",)),
    _named("AGENTOS_TÖKEN", ("AGENTOS_TÖKEN",)),
    _named("A" * 300, ("A" * 64,)),
    provider_raising,
    provider_raising_keyerror,
    provider_wrong_type,
    provider_empty,
    provider_whitespace,
    provider_bytes_bad_utf8,
    provider_str_lone_surrogate,
    provider_secret_with_nul,
]


def test_the_catalogue_is_large_enough() -> None:
    assert len(CATALOGUE) >= 25


@pytest.mark.parametrize("build", CATALOGUE, ids=[b.__name__ for b in CATALOGUE])
@pytest.mark.parametrize("call", ["require", "get"])
def test_bad_input(build: Builder, call: str, tmp_path: Path, canary) -> None:
    loader, name, expected, named = build(tmp_path, canary.value)
    with pytest.raises(SecretError) as info:
        getattr(loader, call)(name)
    exc = info.value
    assert type(exc) is expected, f"{type(exc).__name__}: {exc}"
    message = str(exc)
    for word in named:
        assert word in message, f"{word!r} not named in {message!r}"
    if named and expected is not InvalidNameError:
        assert exc.variable in named or exc.path in named
    assert_clean(exc, canary, loader if call == "require" else None)


def test_bad_input_is_reported_by_explain_without_raising(tmp_path: Path, canary) -> None:
    path = _secret_file(tmp_path, canary.value_bytes, mode=0o666)
    explanation = Loader(env={FILE_VAR: path}).explain(NAME)
    assert not explanation.found
    assert explanation.source == "file" and explanation.path == path
    assert explanation.error is not None and "writable by group or others" in explanation.error
    assert str(explanation).startswith(f"{NAME}: unusable (from file {path} (from {FILE_VAR}))")
    canary.assert_absent(str(explanation), json.dumps(explanation.as_dict()))


def test_a_failing_name_file_never_falls_through(tmp_path: Path, canary) -> None:
    """A broken NAME_FILE is a hard error even when a directory and a provider answer."""
    (tmp_path / NAME).write_text(canary.value)
    os.chmod(tmp_path / NAME, 0o600)
    loader = Loader(
        env={FILE_VAR: str(tmp_path / "missing")},
        secret_dirs=[tmp_path],
        provider=lambda name: canary.value,
    )
    with pytest.raises(SecretFileNotFoundError) as info:
        loader.get(NAME)
    assert FILE_VAR in str(info.value)
    assert_clean(info.value, canary)


def test_unreadable_file(tmp_path: Path, canary) -> None:
    """Permission denied. As root, chmod 000 does not deny a read, so the read runs in a
    child that dropped CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (setpriv): then the
    file's 000 mode binds root too."""
    path = _secret_file(tmp_path, canary.value_bytes, mode=0o000)
    if os.geteuid() != 0:
        with pytest.raises(SecretFilePermissionError) as info:
            Loader(env={FILE_VAR: path}).require(NAME)
        assert FILE_VAR in str(info.value) and path in str(info.value)
        assert_clean(info.value, canary)
        return
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no way to make a file unreadable")
    code = (
        "import json, sys\n"
        "from agentos_secrets import Loader, SecretError\n"
        f"try:\n    Loader(env={{{FILE_VAR!r}: sys.argv[1]}}).require({NAME!r})\n"
        "except SecretError as exc:\n"
        "    print(json.dumps([type(exc).__name__, str(exc), exc.variable, exc.path]))\n"
    )
    caps = "-dac_override,-dac_read_search"
    proc = subprocess.run(
        [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", sys.executable, "-c", code, path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0 and "setpriv" in proc.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {proc.stderr.strip()}")
    canary.assert_absent(proc.stdout, proc.stderr)
    kind, message, variable, where = json.loads(proc.stdout)
    assert kind == "SecretFilePermissionError"
    assert FILE_VAR in message and path in message and "permission denied" in message
    assert (variable, where) == (FILE_VAR, path)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"on_conflict": "ignore"}, "on_conflict"),
        ({"max_bytes": 0}, "max_bytes"),
    ],
)
def test_bad_loader_configuration(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Loader(env={}, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, 42, b"AGENTOS_SERVICE_TOKEN", ["AGENTOS_SERVICE_TOKEN"]])
@pytest.mark.parametrize("call", ["get", "require", "explain", "snapshot_of"])
def test_a_name_that_is_not_a_string_is_an_invalid_name(bad: object, call: str) -> None:
    """Also an unhashable one: the cache lookup must not turn it into a TypeError."""
    loader = Loader(env={NAME: "x" * 40})
    with pytest.raises(InvalidNameError, match="must be a string"):
        if call == "snapshot_of":
            loader.snapshot([bad])  # type: ignore[list-item]
        else:
            getattr(loader, call)(bad)
