"""The shared boolean reading: known words, blanks as the default, anything else refused."""

import pytest

from agentos_secrets.booleans import BooleanSettingError, parse_bool, read_bool

CANARY = "canary-7d1f9e0b-not-a-boolean"


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", " yes ", "On"])
def test_true_words(raw: str) -> None:
    assert parse_bool("X", raw, default=False) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", " off "])
def test_false_words(raw: str) -> None:
    assert parse_bool("X", raw, default=True) is False


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_blank_is_the_default(raw: str | None) -> None:
    assert parse_bool("X", raw, default=True) is True
    assert parse_bool("X", raw, default=False) is False


@pytest.mark.parametrize("raw", ["ture", "2", "enabled", "y", "1.0", CANARY])
def test_unknown_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(BooleanSettingError) as info:
        parse_bool("AGENTOS_X", raw, default=False)
    assert "AGENTOS_X" in str(info.value)
    assert info.value.variable == "AGENTOS_X"


def test_the_value_is_never_in_the_message() -> None:
    with pytest.raises(BooleanSettingError) as info:
        parse_bool("AGENTOS_X", CANARY, default=False)
    assert CANARY not in str(info.value) and CANARY not in repr(info.value)


def test_read_bool_from_a_mapping() -> None:
    assert read_bool({"A": "on"}, "A", default=False) is True
    assert read_bool({}, "A", default=True) is True
    with pytest.raises(BooleanSettingError):
        read_bool({"A": 7}, "A", default=False)
