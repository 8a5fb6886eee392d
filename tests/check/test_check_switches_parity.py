"""``check``'s copy of the sidecar's choices and numeric limits matches the sidecar.

:mod:`agentos_secrets.check.switches` restates what the sidecar's parser accepts (AS212
must fire exactly when the sidecar would refuse to start). These tests hold the two
together: the tables are compared with the parser's own, and every probe value is given
to the real parser (``agentos_secrets.sidecar.config.parse``) and to ``check``, which
must agree on accept or refuse, from the command line and from the environment.
"""

from __future__ import annotations

import pytest

from agentos_secrets.check import switches
from agentos_secrets.sidecar import config, config_values

#: Flags that must be set so that the one probed is judged alone (each action has what
#: it needs; the orderings need their partner out of the way).
_BASE = ["--watch", "/etc/agentos/secrets", "--url", "http://127.0.0.1:8080/reload",
         "--exec", "true", "--target-name", "app"]
_PARTNER = {"debounce": ["--max-wait", "86400"], "backoff-initial": ["--backoff-max", "86400"],
            "max-wait": ["--debounce", "0"], "backoff-max": ["--backoff-initial", "0.001"]}

_NUMBER_PROBES = ["0", "-0", "0.0005", "0.001", "0.01", "0.04", "0.05", "0.1", "0.5", "1",
                  " 2 ", "5", "1e3", "3600", "3600.5", "86400", "86401", "1000000",
                  "1000001", "999999999", "1000000000", "-1", "+5", "1_0", "0x10", "inf",
                  "-inf", "nan", "1e999", "", " ", "five", "1" * 65, "\u00b2", "\u0661"]
_CHOICE_PROBES = ["http", "signal", "Signal", " rollout ", "ROLLOUT", "exec", "json", "text",
                  "JSON", "debug", "INFO", "Warning", "error", "yaml", "", " ", "sig nal",
                  "CRITICAL", "\u017fignal"]
_LISTEN_PROBES = ["0.0.0.0:9095", "[::]:9095", ":9095", "localhost:9095", "127.0.0.1:1",
                  "host.example:9095", "0.0.0.0", "0.0.0.0:65536", "0.0.0.0:123456",
                  " 0.0.0.0:9095 ", "off", "OFF", "none", "", "[::1]:80", "::1:80",
                  "0.0.0.0:", "0.0.0.0:+1"]


def test_the_choice_tables_are_the_sidecars():
    assert {k.replace("-", "_"): v for k, v in switches.CHOICES.items()} == config_values._ENUMS
    assert switches.CHOICES["action"] == config.ACTIONS


def test_the_numeric_ranges_are_the_sidecars():
    seconds = {k: (low, high) for k, (low, _, high) in config_values._SECONDS.items()}
    ours = {k.replace("-", "_"): (low, high)
            for k, (low, high, whole) in switches.NUMBERS.items() if not whole}
    assert ours == seconds
    assert switches.NUMBERS["max-per-hour"] == (1, config_values._MAX_PER_HOUR, True)
    assert {(a, b) for a, b, _, _ in switches.ORDERED} == {
        ("max-wait", "debounce"), ("backoff-max", "backoff-initial")}
    defaults = config.Config(watch=("/x",))
    for longer, shorter, longer_default, shorter_default in switches.ORDERED:
        assert getattr(defaults, longer.replace("-", "_")) == longer_default
        assert getattr(defaults, shorter.replace("-", "_")) == shorter_default


def _sidecar_accepts(argv: list[str], env: dict[str, str]) -> bool:
    try:
        config.parse(argv, env)
    except config.ConfigError:
        return False
    return True


def _both_ways(flag: str, value: str, extra: list[str]) -> list[tuple[bool, bool]]:
    """(sidecar accepts, from_env) for the flag on the command line and in the env."""
    return [
        (_sidecar_accepts([*_BASE, *extra, f"--{flag}={value}"], {}), False),
        (_sidecar_accepts([*_BASE, *extra], {config.env_var(f"--{flag}"): value}), True),
    ]


@pytest.mark.parametrize("flag", sorted(switches.NUMBERS))
def test_numbers_agree_with_the_sidecar(flag):
    for value in _NUMBER_PROBES:
        for accepted, from_env in _both_ways(flag, value, _PARTNER.get(flag, [])):
            problem = switches.sidecar_number_problem(flag, value, from_env=from_env)
            assert (problem is None) == accepted, (flag, value, from_env, problem)


@pytest.mark.parametrize("flag", sorted(switches.CHOICES))
def test_choices_agree_with_the_sidecar(flag):
    for value in _CHOICE_PROBES:
        for accepted, from_env in _both_ways(flag, value, []):
            problem = switches.sidecar_choice_problem(flag, value, from_env=from_env)
            assert (problem is None) == accepted, (flag, value, from_env, problem)


def test_listen_agrees_with_the_sidecar():
    for value in _LISTEN_PROBES:
        for accepted, from_env in _both_ways("listen", value, []):
            problem = switches.sidecar_listen_problem(value, from_env=from_env)
            assert (problem is None) == accepted, (value, from_env, problem)


@pytest.mark.parametrize(("flags", "refused"), [
    ({"debounce": "20"}, True),            # max-wait's default (10) is shorter
    ({"debounce": "20", "max-wait": "20"}, False),
    ({"max-wait": "0.5"}, True),           # shorter than debounce's default (1)
    ({"backoff-initial": "120"}, True),    # backoff-max's default (60) is shorter
    ({"backoff-max": "0.5", "backoff-initial": "0.1"}, False),
    ({"debounce": "0", "max-wait": "0"}, False),
])
def test_orderings_agree_with_the_sidecar(flags, refused):
    argv = [*_BASE, *(f"--{k}={v}" for k, v in flags.items())]
    assert _sidecar_accepts(argv, {}) is not refused
    values = {k: switches.sidecar_number(k, v) for k, v in flags.items()}
    assert (switches.sidecar_order_problem(values) is not None) is refused  # type: ignore[arg-type]
