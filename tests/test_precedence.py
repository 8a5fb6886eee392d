"""The precedence table: explicit cases, then a property test against a reference model.

The table (first match wins): the trimmed name; ``NAME`` when non-empty after trimming;
``NAME_FILE`` when non-empty (a failure is a hard error, never a fall-through); each secret
directory in order, then ``$CREDENTIALS_DIRECTORY``; the provider; missing. ``NAME`` and
``NAME_FILE`` together follow ``on_conflict``. Values are trimmed unless ``strip=False``
(environment values are always trimmed, as in the original Go loader).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agentos_secrets import (
    ConflictError,
    Loader,
    MissingSecretError,
    Secret,
    SecretError,
    SecretValueError,
)
from agentos_secrets.testing import AtomicWriter

NAME = "AGENTOS_FED_SHARED_SECRET"
FILE_VAR = NAME + "_FILE"


def _write(path: Path, content: str | bytes, mode: int = 0o600) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    os.chmod(path, mode)
    return str(path)


# -- explicit cases ----------------------------------------------------------------------
def test_name_wins_and_is_trimmed(tmp_path: Path, canary) -> None:
    loader = Loader(env={NAME: f"  {canary.value}\n"}, secret_dirs=[tmp_path])
    _write(tmp_path / NAME, "from-directory")
    secret = loader.require(NAME)
    assert secret.reveal() == canary.value and secret.source == "env"


def test_the_name_itself_is_trimmed(canary) -> None:
    assert Loader(env={NAME: canary.value}).require(f"  {NAME}\t").name == NAME


def test_whitespace_only_name_counts_as_unset(tmp_path: Path, canary) -> None:
    path = _write(tmp_path / "token", canary.value)
    secret = Loader(env={NAME: " \t\n", FILE_VAR: path}).require(NAME)
    assert secret.reveal() == canary.value and secret.source == "file"


def test_whitespace_only_name_file_counts_as_unset(tmp_path: Path, canary) -> None:
    _write(tmp_path / NAME, canary.value)
    secret = Loader(env={FILE_VAR: "   "}, secret_dirs=[tmp_path]).require(NAME)
    assert secret.source == "directory"


def test_name_file_is_trimmed_and_read(tmp_path: Path, canary) -> None:
    path = _write(tmp_path / "token", f"\n {canary.value} \n")
    secret = Loader(env={FILE_VAR: f" {path} "}).require(NAME)
    assert secret.reveal() == canary.value


def test_missing(canary) -> None:
    loader = Loader(env={NAME: "", FILE_VAR: ""}, use_credentials_directory=False)
    assert loader.get(NAME) is None
    default = Secret(canary.value)
    assert loader.get(NAME, default) is default
    with pytest.raises(MissingSecretError) as info:
        loader.require(NAME)
    assert str(info.value) == f"secret {NAME} is required but missing"
    assert info.value.variable == NAME


def test_conflict_warn_uses_name_and_warns_once(
    tmp_path: Path, canary, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "token", "from-file")
    loader = Loader(env={NAME: canary.value, FILE_VAR: path})
    with caplog.at_level(logging.WARNING, logger="agentos_secrets"):
        for _ in range(3):
            assert loader.require(NAME).reveal() == canary.value
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert NAME in message and FILE_VAR in message


def test_conflict_error(tmp_path: Path, canary) -> None:
    path = _write(tmp_path / "token", canary.value)
    loader = Loader(env={NAME: canary.value, FILE_VAR: path}, on_conflict="error")
    with pytest.raises(ConflictError) as info:
        loader.get(NAME)
    assert NAME in str(info.value) and FILE_VAR in str(info.value)


def test_conflict_prefer_file(tmp_path: Path, canary) -> None:
    path = _write(tmp_path / "token", canary.value)
    loader = Loader(env={NAME: "from-env", FILE_VAR: path}, on_conflict="prefer-file")
    secret = loader.require(NAME)
    assert secret.reveal() == canary.value and secret.source == "file"


def test_directories_in_order_then_credentials_directory(tmp_path: Path, canary) -> None:
    first, second, creds = tmp_path / "first", tmp_path / "second", tmp_path / "creds"
    for directory in (first, second, creds):
        directory.mkdir()
    _write(second / NAME, canary.value)
    _write(creds / NAME, "from-credentials")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    loader = Loader(env=env, secret_dirs=[first, second])
    assert loader.require(NAME).reveal() == canary.value
    assert loader.secret_dirs == (str(first), str(second), str(creds))
    (second / NAME).unlink()
    assert Loader(env=env, secret_dirs=[first, second]).require(NAME).reveal() == (
        "from-credentials"
    )
    off = Loader(env=env, secret_dirs=[first], use_credentials_directory=False)
    assert off.get(NAME) is None


def test_kubelet_volume(tmp_path: Path, canary) -> None:
    volume = tmp_path / "secrets"
    AtomicWriter(volume).write({NAME: canary.value + "\n", "OTHER": "x"})
    secret = Loader(env={}, secret_dirs=[volume]).require(NAME)
    assert secret.reveal() == canary.value and secret.source == "directory"


def test_provider_is_last_and_only_asked_when_needed(tmp_path: Path, canary) -> None:
    asked: list[str] = []

    def provider(name: str) -> str | None:
        asked.append(name)
        return f" {canary.value} " if name == NAME else None

    path = _write(tmp_path / "token", "from-file")
    assert Loader(env={FILE_VAR: path}, provider=provider).require(NAME).source == "file"
    assert asked == []
    loader = Loader(env={}, provider=provider, use_credentials_directory=False)
    secret = loader.require(NAME)
    assert (secret.reveal(), secret.source) == (canary.value, "provider")
    assert loader.get("AGENTOS_SIGNING_KEY") is None
    assert asked == [NAME, "AGENTOS_SIGNING_KEY"]


def test_strip_false_keeps_file_bytes_exact(tmp_path: Path, canary) -> None:
    pem = f"-----BEGIN KEY-----\n{canary.value}\n-----END KEY-----\n"
    path = _write(tmp_path / "key.pem", pem)
    loader = Loader(env={FILE_VAR: path, "AGENTOS_SIGNING_KEY": "  env  "}, strip=False)
    assert loader.require(NAME).reveal() == pem
    assert loader.require("AGENTOS_SIGNING_KEY").reveal() == "env"  # env is always trimmed


def test_default_env_is_os_environ_read_live(monkeypatch: pytest.MonkeyPatch, canary) -> None:
    monkeypatch.delenv(NAME, raising=False)
    monkeypatch.delenv(FILE_VAR, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    loader = Loader()
    assert loader.get(NAME) is None
    monkeypatch.setenv(NAME, canary.value)
    assert loader.require(NAME).reveal() == canary.value


def test_explain_lists_what_is_shadowed(tmp_path: Path, canary) -> None:
    path = _write(tmp_path / "token", "from-file")
    _write(tmp_path / "dir" / NAME, "from-dir")
    loader = Loader(
        env={NAME: canary.value, FILE_VAR: path},
        secret_dirs=[tmp_path / "dir"],
        provider=lambda name: "from-provider",
    )
    explanation = loader.explain(NAME)
    assert explanation.found and explanation.source == "env" and not explanation.rotates
    assert explanation.conflict is not None and FILE_VAR in explanation.conflict
    assert len(explanation.shadowed) == 3
    assert FILE_VAR in explanation.shadowed[0]
    assert str(tmp_path / "dir" / NAME) in explanation.shadowed[1]
    assert explanation.shadowed[2] == "provider"
    assert explanation.fingerprint == Secret(canary.value).fingerprint()
    canary.assert_absent(str(explanation), explanation.as_dict())


# -- the property test -------------------------------------------------------------------
_WS = " \t\n"
_text = st.text(alphabet="ab-é🔑" + _WS, max_size=6)
_maybe_text = st.none() | _text
_padding = st.sampled_from(["", " ", "\n", " \t "])


@dataclass
class Case:
    """One configuration of every source; ``None`` means "not set / absent"."""

    env_value: str | None
    file_env: str | None  # None: unset; "": set empty; "FILE": points at the file
    file_content: str
    file_padding: str
    dir_contents: list[str | None]  # per secret dir: the file NAME in it, or absent
    creds: str | None  # None: unset; "": empty; "DIR": set; "DIR-DUP": same as dirs[0]
    creds_content: str | None
    use_creds: bool
    provider: str | bool | None  # False: no provider; None: answers None; str: answers
    on_conflict: str
    strip: bool


cases = st.builds(
    Case,
    env_value=_maybe_text,
    file_env=st.sampled_from([None, "", "  ", "FILE"]),
    file_content=_text,
    file_padding=_padding,
    dir_contents=st.lists(st.none() | _text, max_size=3),
    creds=st.sampled_from([None, "", "DIR", "DIR-DUP"]),
    creds_content=_maybe_text,
    use_creds=st.booleans(),
    provider=st.just(False) | _maybe_text,
    on_conflict=st.sampled_from(["warn", "error", "prefer-file"]),
    strip=st.booleans(),
)


def model(case: Case) -> tuple[str, object]:
    """The precedence table, written as plainly as possible.

    Returns ("value", (text, source)), ("missing", None) or ("error", exception type).
    """

    def content(text: str) -> tuple[str, object]:
        kept = text.strip() if case.strip else text
        return ("value", kept) if kept else ("error", SecretValueError)

    file_text = case.file_padding + case.file_content + case.file_padding
    env_set = case.env_value is not None and case.env_value.strip() != ""
    file_set = case.file_env == "FILE"
    if env_set and file_set:
        if case.on_conflict == "error":
            return "error", ConflictError
        if case.on_conflict == "prefer-file":
            return _with_source(content(file_text), "file")
        return "value", (case.env_value.strip(), "env")  # type: ignore[union-attr]
    if env_set:
        return "value", (case.env_value.strip(), "env")  # type: ignore[union-attr]
    if file_set:
        return _with_source(content(file_text), "file")
    directories = list(case.dir_contents)
    if case.use_creds and case.creds == "DIR":
        directories.append(case.creds_content)
    for text in directories:
        if text is not None:
            return _with_source(content(text), "directory")
    if case.provider is not False:
        if case.provider is None:
            return "missing", None
        return _with_source(content(case.provider), "provider")  # type: ignore[arg-type]
    return "missing", None


def _with_source(outcome: tuple[str, object], source: str) -> tuple[str, object]:
    kind, detail = outcome
    return (kind, (detail, source)) if kind == "value" else outcome


def build(case: Case, root: Path) -> Loader:
    """Materialise ``case`` as real files and directories under ``root``."""
    env: dict[str, str] = {}
    if case.env_value is not None:
        env[NAME] = case.env_value
    secret_file = root / "named" / "secret"
    _write(secret_file, case.file_padding + case.file_content + case.file_padding)
    if case.file_env is not None:
        env[FILE_VAR] = f" {secret_file} " if case.file_env == "FILE" else case.file_env
    dirs = []
    for i, text in enumerate(case.dir_contents):
        directory = root / f"dir{i}"
        directory.mkdir()
        _write(directory / "OTHER_SECRET", "unrelated")
        if text is not None:
            _write(directory / NAME, text)
        dirs.append(directory)
    if case.creds is not None:
        creds = root / "creds"
        creds.mkdir()
        if case.creds_content is not None:
            _write(creds / NAME, case.creds_content)
        if case.creds == "DIR":
            env["CREDENTIALS_DIRECTORY"] = str(creds)
        elif case.creds == "DIR-DUP" and dirs:
            env["CREDENTIALS_DIRECTORY"] = str(dirs[0])
        elif case.creds == "":
            env["CREDENTIALS_DIRECTORY"] = ""
    provider = None
    if case.provider is not False:
        answer = case.provider
        provider = lambda name: answer if name == NAME else None  # noqa: E731
    return Loader(
        env=env,
        secret_dirs=dirs,
        provider=provider,
        on_conflict=case.on_conflict,  # type: ignore[arg-type]
        strip=case.strip,
        use_credentials_directory=case.use_creds,
    )


def observe(loader: Loader) -> tuple[str, object]:
    try:
        secret = loader.get(NAME)
    except SecretError as exc:
        return "error", type(exc)
    if secret is None:
        return "missing", None
    return "value", (secret.reveal(), secret.source)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases)
def test_loader_agrees_with_the_model(case: Case) -> None:
    with tempfile.TemporaryDirectory() as root:
        loader = build(case, Path(root))
        expected = model(case)
        event(f"{expected[0]} {getattr(expected[1], '__name__', '')}".strip())
        if expected[0] == "value":
            event(f"source {expected[1][1]}")  # type: ignore[index]
        assert observe(loader) == expected
        assert observe(loader) == expected  # the second, cached lookup agrees too
        if expected[0] == "missing":
            with pytest.raises(MissingSecretError):
                loader.require(NAME)
        explanation = loader.explain(NAME)  # explain() tells the same story, never raising
        assert explanation.found == (expected[0] == "value")
        if expected[0] == "value":
            assert explanation.source == expected[1][1]  # type: ignore[index]
        assert (explanation.error is not None) == (expected[0] == "error")
