"""Flags and AGENTOS_SIDECAR_* variables: precedence, defaults, errors that name both."""

from __future__ import annotations

import pytest

from agentos_secrets.sidecar.config import ConfigError, StatusRanges, env_var, parse


def test_env_var_names():
    assert env_var("--max-per-hour") == "AGENTOS_SIDECAR_MAX_PER_HOUR"
    assert env_var("--watch") == "AGENTOS_SIDECAR_WATCH"


def test_defaults_follow_the_contract(tmp_path):
    config = parse(["--watch", str(tmp_path), "--url", "http://127.0.0.1:1/reload"], env={})
    assert config.action == "http" and config.method == "POST"
    assert 204 in config.expect_status and 404 not in config.expect_status
    assert (config.debounce, config.max_wait, config.min_interval) == (1.0, 10.0, 10.0)
    assert (config.max_per_hour, config.resync, config.timeout) == (12, 60.0, 5.0)
    assert config.listen == "0.0.0.0:9095" and config.log_format == "json"
    assert config.signal == "HUP" and config.grace_period == 30.0
    assert config.annotation == "secrets.agentos.io/fingerprint"
    assert (config.backoff_initial, config.backoff_max) == (1.0, 60.0)


def test_environment_configures_everything_and_flags_win(tmp_path):
    env = {
        "AGENTOS_SIDECAR_WATCH": f"{tmp_path}/a, {tmp_path}/b",
        "AGENTOS_SIDECAR_URL": "http://127.0.0.1:1/x",
        "AGENTOS_SIDECAR_DEBOUNCE": "0.25",
        "AGENTOS_SIDECAR_MAX_PER_HOUR": "3",
        "AGENTOS_SIDECAR_LOG_FORMAT": "text",
        "AGENTOS_SIDECAR_HEADER_FILE": f"Authorization={tmp_path}/tok",
    }
    config = parse([], env=env)
    assert config.watch == (f"{tmp_path}/a", f"{tmp_path}/b")
    assert config.debounce == 0.25 and config.max_per_hour == 3
    assert config.log_format == "text"
    assert config.header_files == (("Authorization", f"{tmp_path}/tok"),)
    config = parse(["--debounce", "2", "--watch", str(tmp_path)], env=env)
    assert config.debounce == 2.0
    assert config.watch == (str(tmp_path),)  # the command line replaces the list


def test_a_bad_env_value_names_flag_and_variable(tmp_path):
    env = {"AGENTOS_SIDECAR_RESYNC": "soon", "AGENTOS_SIDECAR_URL": "http://h/"}
    with pytest.raises(ConfigError) as err:
        parse(["--watch", str(tmp_path)], env=env)
    assert "--resync" in str(err.value) and "AGENTOS_SIDECAR_RESYNC" in str(err.value)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "--watch"),
        (["--watch", "/x"], "--url"),
        (["--watch", "/x", "--url", "ftp://h/"], "--url"),
        (["--watch", "/x", "--url", "http://h/", "--debounce", "-1"], "--debounce"),
        (["--watch", "/x", "--url", "http://h/", "--debounce", "5", "--max-wait", "1"],
         "--max-wait"),
        (["--watch", "/x", "--url", "http://h/", "--expect-status", "2xx"], "--expect-status"),
        (["--watch", "/x", "--url", "http://h/", "--header-file", "novalue"], "--header-file"),
        (["--watch", "/x", "--action", "signal"], "--target-name"),
        (["--watch", "/x", "--action", "signal", "--target-name", "a", "--target-pidfile", "/p"],
         "exactly one"),
        (["--watch", "/x", "--action", "signal", "--target-cmdline", "("], "--target-cmdline"),
        (["--watch", "/x", "--action", "exec"], "--exec"),
        (["--watch", "/x", "--url", "http://h/", "--listen", "nope"], "--listen"),
        (["--watch", "/x", "--url", "http://h/", "--max-per-hour", "0"], "--max-per-hour"),
    ],
)
def test_config_errors_name_the_flag(argv, needle):
    with pytest.raises(ConfigError) as err:
        parse(argv, env={})
    assert needle in str(err.value)


def test_url_credentials_never_appear_in_config_errors(canary):
    with pytest.raises(ConfigError) as err:
        parse(["--watch", "/x", "--url", f"ftp://user:{canary.value}@h/"], env={})
    canary.assert_absent(str(err.value))


def test_status_ranges():
    ranges = StatusRanges("200-299, 304")
    assert 200 in ranges and 299 in ranges and 304 in ranges
    assert 300 not in ranges and "200" not in ranges
    with pytest.raises(ValueError):
        StatusRanges("299-200")


def test_listen_off_and_exec_split(tmp_path):
    config = parse(
        ["--watch", str(tmp_path), "--action", "exec", "--exec", "touch '/tmp/a b'",
         "--listen", "off"],
        env={},
    )
    assert config.listen is None and config.listen_address is None
    assert config.exec_argv == ("touch", "/tmp/a b")
