"""Red team, sidecar flags: a secret given where a path or a value belongs is never shown
back, numbers at their limits are refused naming the flag, booleans are read strictly.

Each parametrized case is one instance found; each failed before its fix (the message
quoted the value, or a relative path came back through ``abspath``, or ``inf`` passed).
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentos_secrets.sidecar.config import ConfigError, parse
from agentos_secrets.sidecar.main import main

SECRET = "canary-Zq9-do-not-leak-7f3e1c"
BASE = ["--watch", "/x", "--url", "http://127.0.0.1:1/r"]


def _refused(argv: list[str], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        parse(argv, env=env or {})
    return str(err.value)


# -- class 1: a secret where a path or a flag value belongs ---------------------------------

PATH_FLAGS = ["--hmac-key-file", "--target-pidfile", "--token-file", "--ca-file",
              "--state-file"]


@pytest.mark.parametrize("flag", PATH_FLAGS)
def test_a_relative_path_flag_is_refused_without_echo(flag):
    message = _refused([*BASE, flag, SECRET])
    assert flag in message and SECRET not in message
    assert "not an absolute path" in message


@pytest.mark.parametrize("flag", PATH_FLAGS)
def test_a_relative_path_variable_is_refused_without_echo(flag):
    variable = "AGENTOS_SIDECAR_" + flag[2:].upper().replace("-", "_")
    message = _refused(BASE, {variable: SECRET})
    assert variable in message and SECRET not in message


def test_a_relative_watch_path_is_refused_without_echo():
    # abspath() made it "/cwd/<secret>", then logged at start-up and shown by /readyz.
    message = _refused(["--watch", SECRET, "--url", "http://h/"])
    assert "--watch" in message and SECRET not in message
    message = _refused(["--url", "http://h/"], {"AGENTOS_SIDECAR_WATCH": f"/ok,{SECRET}"})
    assert SECRET not in message


def test_a_header_file_with_a_secret_instead_of_a_path():
    # "Authorization=Bearer <token>": the old code made the token a path and showed it.
    message = _refused([*BASE, "--header-file", f"Authorization=Bearer {SECRET}"])
    assert "--header-file Authorization" in message and SECRET not in message
    message = _refused([*BASE, "--header-file", SECRET])  # no NAME=
    assert "NAME=PATH" in message and SECRET not in message


@pytest.mark.parametrize(
    ("variable", "flag"),
    [
        ("AGENTOS_SIDECAR_RESYNC", "--resync"),
        ("AGENTOS_SIDECAR_DEBOUNCE", "--debounce"),
        ("AGENTOS_SIDECAR_MAX_PER_HOUR", "--max-per-hour"),
        ("AGENTOS_SIDECAR_LOG_FORMAT", "--log-format"),
        ("AGENTOS_SIDECAR_LOG_LEVEL", "--log-level"),
        ("AGENTOS_SIDECAR_ACTION", "--action"),
        ("AGENTOS_SIDECAR_SEND_FINGERPRINT", "--send-fingerprint"),
        ("AGENTOS_SIDECAR_EXPECT_STATUS", "--expect-status"),
        ("AGENTOS_SIDECAR_LISTEN", "--listen"),
        ("AGENTOS_SIDECAR_METHOD", "--method"),
        ("AGENTOS_SIDECAR_SHUTDOWN_TIMEOUT", "--shutdown-timeout"),
    ],
)
def test_a_value_that_does_not_parse_is_named_not_echoed(variable, flag):
    message = _refused(BASE, {variable: SECRET})
    assert flag in message and variable in message and SECRET not in message
    message = _refused([*BASE, flag, SECRET])
    assert flag in message and SECRET not in message


def test_a_listen_host_that_is_not_an_address_is_not_echoed():
    # "<secret>:9095" passed the old check and was logged by "cannot listen on".
    message = _refused([*BASE, "--listen", f"{SECRET}:9095"])
    assert "--listen" in message and SECRET not in message
    for good in ("0.0.0.0:9095", "[::]:9095", "127.0.0.1:0", ":9095", "localhost:1"):
        assert parse([*BASE, "--listen", good], env={}).listen == good


def test_a_url_that_is_not_a_url_is_not_echoed():
    message = _refused(["--watch", "/x", "--url", SECRET])
    assert "--url" in message and SECRET not in message
    message = _refused(["--watch", "/x", "--url", f"http://h/ {SECRET}"])
    assert SECRET not in message


def test_a_bad_signal_is_named_not_echoed():
    message = _refused(["--watch", "/x", "--action", "signal", "--target-name", "a",
                        "--signal", SECRET])
    assert "--signal" in message and SECRET not in message


@pytest.mark.parametrize(
    "argv",
    [
        [*BASE, "--deb=" + SECRET],  # argparse: "ambiguous option: --deb=<value> could..."
        [*BASE, "--t=" + SECRET],
        [*BASE, SECRET],  # argparse: "unrecognized arguments: <value>"
        [*BASE, "--no-such-flag", SECRET],
        [*BASE, "--help=" + SECRET],  # "ignored explicit argument '<value>'"
    ],
)
def test_argparse_errors_never_quote_a_value(argv):
    message = _refused(argv)
    assert SECRET not in message


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--deployment", SECRET.upper()), ("--namespace", SECRET + "."),
     ("--annotation", "a/" + SECRET + "/")],
)
def test_rollout_names_are_named_not_echoed(flag, value, capfd):
    code = main(["--watch", "/x", "--action", "rollout", "--listen", "off", flag, value])
    out, err = capfd.readouterr()
    assert code == 2 and flag in err and SECRET not in out + err
    assert SECRET.upper() not in out + err


def test_main_config_errors_do_not_echo(capfd):
    assert main(["--watch", "/x", "--url", "http://h/", "--debounce", SECRET]) == 2
    out, err = capfd.readouterr()
    assert "--debounce" in err and SECRET not in out + err


# -- class 5: numbers at their limits ---------------------------------------------------------

SECONDS_FLAGS = ["--debounce", "--max-wait", "--min-interval", "--resync",
                 "--backoff-initial", "--backoff-max", "--timeout", "--grace-period",
                 "--shutdown-timeout"]


@pytest.mark.parametrize("flag", SECONDS_FLAGS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e308", "-1", "1e400", "9" * 400])
def test_seconds_at_their_limits_are_refused(flag, value):
    # inf and 1e308 passed before: Condition.wait(inf) raised OverflowError in the loop.
    message = _refused([*BASE, flag, value])
    assert flag in message


@pytest.mark.parametrize("value", ["0", "-1", "1e9", "99999999999", "1.5", "²", "inf"])
def test_max_per_hour_at_its_limits_is_refused(value):
    assert "--max-per-hour" in _refused([*BASE, "--max-per-hour", value])


@pytest.mark.parametrize("value", ["h:²", "h:99999", "h:-1", ":", "h:1e3", "[::1:1"])
def test_listen_ports_at_their_limits_are_refused(value):
    # "h:²" passed str.isdigit() and then crashed int() with an uncaught ValueError.
    assert "--listen" in _refused([*BASE, "--listen", value])


def test_many_watch_paths_are_refused():
    argv = ["--url", "http://h/"]
    for i in range(65):
        argv += ["--watch", f"/w{i}"]
    assert "at most 64" in _refused(argv)


# -- class 6: booleans and enumerations -------------------------------------------------------

@pytest.mark.parametrize(("word", "expected"),
                         [("true", True), ("YES", True), ("1", True), ("on", True),
                          ("false", False), ("0", False), ("no", False), ("off", False)])
def test_send_fingerprint_takes_the_boolean_words(word, expected):
    assert parse([*BASE, "--send-fingerprint", word], env={}).send_fingerprint is expected
    env = {"AGENTOS_SIDECAR_SEND_FINGERPRINT": word}
    assert parse(BASE, env=env).send_fingerprint is expected


def test_enumerations_ignore_case():
    config = parse([*BASE, "--log-level", "debug", "--log-format", "TEXT"], env={})
    assert (config.log_level, config.log_format) == ("DEBUG", "text")


# -- property: the flag parser ----------------------------------------------------------------

ALL_FLAGS = [
    "--watch", "--action", "--url", "--method", "--expect-status", "--header-file",
    "--hmac-key-file", "--timeout", "--send-fingerprint", "--signal", "--target-name",
    "--target-cmdline", "--target-pidfile", "--grace-period", "--deployment", "--namespace",
    "--annotation", "--api-server", "--token-file", "--ca-file", "--exec", "--debounce",
    "--max-wait", "--min-interval", "--max-per-hour", "--resync", "--backoff-initial",
    "--backoff-max", "--state-file", "--listen", "--log-format", "--log-level",
    "--shutdown-timeout",
]
_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["inf", "nan", "-0", "1e308", "0", "1", "true", "/abs", "h:1", "[::]:0",
                     "200-299", "HUP", "a=b", "GET", "http://h/", "²", "٣"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(st.sampled_from(ALL_FLAGS), _values), max_size=8),
       env_pairs=st.lists(st.tuples(st.sampled_from(ALL_FLAGS), _values), max_size=4))
def test_the_flag_parser_refuses_cleanly_and_never_echoes(pairs, env_pairs):
    argv: list[str] = []
    for flag, value in pairs:
        argv += [flag, f"{value}{SECRET}"] if value[:1] != "-" else [f"{flag}={value}{SECRET}"]
    env = {"AGENTOS_SIDECAR_" + f[2:].upper().replace("-", "_"): v + SECRET
           for f, v in env_pairs}
    try:
        config = parse(argv, env=env)
    except ConfigError as exc:
        message = str(exc)
        assert SECRET not in message
        assert "--" in message  # names a flag
        return
    # accepted: every number finite and within bounds, every path absolute
    for name in ("debounce", "max_wait", "min_interval", "resync", "timeout",
                 "grace_period", "backoff_initial", "backoff_max", "shutdown_timeout"):
        value = getattr(config, name)
        assert 0 <= value <= 86400
    assert all(w.startswith("/") for w in config.watch)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=string.printable + "²٣∞", max_size=30))
def test_every_number_flag_accepts_only_finite_bounded_values(text):
    for flag in (*SECONDS_FLAGS, "--max-per-hour"):
        try:
            config = parse([*BASE, f"{flag}={text}"], env={})
        except ConfigError as exc:
            assert flag in str(exc) or "ambiguous" in str(exc) or "--max-wait" in str(exc) \
                or "--backoff-max" in str(exc)
            continue
        value = getattr(config, flag[2:].replace("-", "_"))
        assert value == value and abs(value) < 10**7


def test_an_exec_command_that_is_not_a_path_is_not_named(canary):
    # AGENTOS_SIDECAR_EXEC=<secret>: "command <secret> cannot be run" reached the logs
    # and /healthz's last_error.
    from agentos_secrets.sidecar.actions.base import ActionError
    from agentos_secrets.sidecar.actions.exec import ExecAction

    action = ExecAction((canary.value,))
    with pytest.raises(ActionError) as err:
        action.apply("")
    canary.assert_absent(str(err.value), repr(action))
    assert ExecAction(("/usr/bin/true",)).name == "true"


def test_readyz_reasons_do_not_quote_the_target_name_or_pattern(canary):
    # "no process with name '<value>'" went to /readyz, open to the pod network.
    from agentos_secrets.sidecar.actions.process import TargetSpec, find_target

    for spec in (TargetSpec(name=canary.value), TargetSpec(cmdline=canary.value + "-x")):
        target, why = find_target(spec)
        assert target is None and why
        canary.assert_absent(why)
