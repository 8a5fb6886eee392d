"""No secret value travels in an exception's chain (``__context__`` / ``__cause__``).

``raise X from None`` inside an ``except`` block hides the caught error from a printed
traceback but still keeps it as ``__context__``: when the caught error quotes the value
(h11's "Illegal header value b'...'", ``re.error.pattern``), anything that walks the chain
(a logger with ``exc_info``, an error reporter) gets the value. These raise outside the
except block instead.
"""

from __future__ import annotations

import socket
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos_secrets.sidecar.actions.base import ActionError
from agentos_secrets.sidecar.actions.http import HttpAction
from agentos_secrets.sidecar.config import ConfigError, parse


def assert_chain_clean(exc: BaseException, canary) -> None:
    texts: list[object] = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        link = todo.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        texts += [str(link), repr(link), *map(repr, link.args), repr(vars(link))]
        todo += [e for e in (link.__cause__, link.__context__) if e is not None]
    canary.assert_absent(*texts)


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("tail", ["\nX-Injected: 1\n", "\u00e9t\u00e9", "\x7f"])
def test_http_action_header_file_that_is_no_header_value_is_refused_without_the_value(
    tmp_path: Path, listener: int, canary, tail: str
):
    # httpx refuses such a value with an error quoting it (and httpcore logs that error
    # at DEBUG): it must be refused before httpx sees it.
    header = tmp_path / "auth"
    header.write_text(f"Bearer {canary.value}{tail}", encoding="utf-8")
    header.chmod(0o600)
    action = HttpAction(
        f"http://127.0.0.1:{listener}/reload",
        header_files=(("Authorization", str(header)),),
        timeout=2.0,
    )
    try:
        with pytest.raises(ActionError) as info:
            action.apply("")
    finally:
        action.close()
    assert "header Authorization" in str(info.value) and info.value.retryable
    assert_chain_clean(info.value, canary)


def test_a_bad_target_cmdline_pattern_is_not_kept_in_the_chain(canary):
    with pytest.raises(ConfigError) as info:
        parse(["--watch", "/tmp", "--action", "signal", "--target-cmdline", f"({canary.value}"],
              {})
    assert "--target-cmdline" in str(info.value)
    assert_chain_clean(info.value, canary)


def test_rollout_token_with_a_line_break_is_refused_without_the_value(tmp_path: Path, canary):
    from fake_apiserver import FakeApiServer, make_tls

    from agentos_secrets.sidecar.actions.rollout import RolloutAction
    from agentos_secrets.testing import AtomicWriter

    (tmp_path / "tls").mkdir()
    tls = make_tls(str(tmp_path / "tls"))
    writer = AtomicWriter(tmp_path / "serviceaccount")
    writer.write({"token": f"{canary.value}\nX-Injected: 1", "namespace": "agentos",
                  "ca.crt": Path(tls.ca).read_bytes()})
    with FakeApiServer(tls, token=canary.value) as api:
        action = RolloutAction(
            deployment="agentos-model-policy",
            namespace="agentos",
            api_server=api.url,
            token_file=f"{writer.target_dir}/token",
            ca_file=f"{writer.target_dir}/ca.crt",
            timeout=2.0,
        )
        try:
            assert "token" in (action.ready() or "")
            with pytest.raises(ActionError) as info:
                action.apply("fp1:0000000000000001")
        finally:
            action.close()
    assert "--token-file" in str(info.value)
    assert_chain_clean(info.value, canary)


def test_the_config_repr_shows_no_url_credentials_command_line_or_target(canary):
    config = parse(
        ["--watch", "/tmp", "--url", f"https://user:{canary.value}@host/reload?token={canary.value}"],
        {},
    )
    text = repr(config)
    canary.assert_absent(text, str(config))
    assert "https://***@host/reload?***" in text and "watch=('/tmp',)" in text
    for argv in (
        ["--action", "exec", "--exec", f"/bin/notify --token {canary.value}"],
        ["--action", "signal", "--target-cmdline", canary.value],
        ["--action", "signal", "--target-name", canary.value],
        ["--action", "rollout", "--deployment", "d", "--api-server",
         f"https://x:{canary.value}@api:6443"],
    ):
        config = parse(["--watch", "/tmp", *argv], {})
        canary.assert_absent(repr(config), str(config))


def test_the_target_spec_repr_does_not_quote_the_name_or_pattern(canary):
    from agentos_secrets.sidecar.actions.process import TargetSpec

    for spec in (TargetSpec(name=canary.value), TargetSpec(cmdline=canary.value)):
        canary.assert_absent(repr(spec), str(spec))
        assert "given" in repr(spec)
    assert "/run/app.pid" in repr(TargetSpec(pidfile="/run/app.pid"))


def test_exec_failures_keep_no_command_line_in_the_chain(tmp_path: Path, canary):
    import sys

    from agentos_secrets.sidecar.actions.exec import ExecAction

    # A bare word as the command (a secret set in the wrong variable): OSError.filename.
    with pytest.raises(ActionError) as info:
        ExecAction((f"{canary.value}-not-a-command",)).apply("")
    assert "cannot be run" in str(info.value)
    assert_chain_clean(info.value, canary)
    # A secret in the arguments of a command that hangs: TimeoutExpired.cmd.
    hang = (sys.executable, "-c", "import time; time.sleep(30)", f"--token={canary.value}")
    with pytest.raises(ActionError) as info:
        ExecAction(hang, timeout=0.3).apply("")
    assert "timed out" in str(info.value)
    assert_chain_clean(info.value, canary)
