"""The precedence chain's own pieces (``agentos_secrets.sources``); the precedence table
itself is tested through the Loader in ``test_precedence.py``."""

from __future__ import annotations

import os

import pytest

from agentos_secrets import sources
from agentos_secrets.sources import Chain

NAME = "AGENTOS_SERVICE_TOKEN"


@pytest.fixture
def entries(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    os.symlink(tmp_path / "file", tmp_path / "link")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    return {
        "file": True,
        "dir": True,
        "link": True,
        "dangling": True,  # exists as an entry: a broken key is an error, not a miss
        "loop": True,
        "missing": False,
        "file/below": False,
        "bad\0name": False,
    }


@pytest.mark.parametrize("check", [sources._lexists, sources._accessible])
def test_both_existence_checks_answer_as_lexists(tmp_path, entries, check):
    for entry, expected in entries.items():
        path = f"{tmp_path}/{entry}"
        assert check(path) is expected, entry
        if "\0" not in entry:
            assert os.path.lexists(path) is expected, entry


@pytest.mark.parametrize("check", [sources._lexists, sources._accessible])
def test_a_directory_key_is_found_with_either_check(tmp_path, monkeypatch, check):
    monkeypatch.setattr(sources, "_exists", check)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (second / NAME).write_text("value")
    chain = Chain({}, [first, second], None, "warn", strip=True, use_credentials_directory=False)
    located = chain.locate(NAME)
    assert located.chosen is not None and located.chosen.path == f"{second}/{NAME}"
    assert located.absent == (f"{first}/{NAME}",)


def test_marks_name_the_credentials_directory_only_when_it_decided(tmp_path):
    (tmp_path / NAME).write_text("value")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    chain = Chain(env, (), None, "warn", strip=True, use_credentials_directory=True)
    marks = dict(chain.locate(NAME).marks)
    assert marks == {NAME: None, f"{NAME}_FILE": None, "CREDENTIALS_DIRECTORY": str(tmp_path)}
    env[NAME] = "from-env"
    assert dict(chain.locate(NAME).marks) == {NAME: "from-env", f"{NAME}_FILE": None}


def test_os_environ_is_read_through_its_backing_dict(monkeypatch):
    monkeypatch.setenv(NAME, "  from-env ")
    monkeypatch.delenv(f"{NAME}_FILE", raising=False)
    chain = Chain(None, (), None, "warn", strip=True, use_credentials_directory=False)
    located = chain.locate(NAME)
    assert located.chosen is not None and located.chosen.kind == "env"
    assert dict(located.marks)[os.fsencode(NAME)] == os.environ._data[os.fsencode(NAME)]  # type: ignore[attr-defined]


def test_an_unknown_conflict_policy_is_refused():
    with pytest.raises(ValueError, match="on_conflict"):
        Chain({}, (), None, "ignore", strip=True, use_credentials_directory=False)  # type: ignore[arg-type]
