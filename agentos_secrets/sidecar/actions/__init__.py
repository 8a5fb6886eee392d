"""What the sidecar does when a change is confirmed: one module per ``--action``.

``rollout`` keeps its transport in ``rollout_api`` and its flag checks in
``rollout_names``; ``base`` and ``bounded`` are shared by the actions.

:func:`build` imports only the chosen action's module, so a ``signal`` sidecar never
loads httpx (the 30 MiB RSS budget with 20 watched directories).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config
    from .base import Action

__all__ = ["EXEC_TIMEOUT", "build"]

#: How long one ``exec`` command may run before it is killed and retried.
EXEC_TIMEOUT = 60.0


def build(config: Config) -> Action:
    """The action ``config`` asks for; ``ConfigError`` when it cannot be built."""
    from ..config import ConfigError

    if config.action == "http":
        from .http import HttpAction

        assert config.url is not None
        return HttpAction(
            config.url,
            method=config.method,
            expect_status=config.expect_status,
            header_files=config.header_files,
            hmac_key_file=config.hmac_key_file,
            timeout=config.timeout,
            send_fingerprint=config.send_fingerprint,
        )
    if config.action in ("signal", "restart"):
        from .process import TargetSpec

        spec = TargetSpec(config.target_name, config.target_cmdline, config.target_pidfile)
        if config.action == "restart":
            from .restart import RestartAction

            return RestartAction(spec, grace_period=config.grace_period)
        from .signal import SignalAction

        try:
            return SignalAction(spec, config.signal)
        except ValueError:
            raise ConfigError(
                "--signal (AGENTOS_SIDECAR_SIGNAL): not a signal name or number (the value"
                " is not shown)"
            ) from None
    if config.action == "none":
        from .none import NoAction

        return NoAction()
    if config.action == "exec":
        from .exec import ExecAction

        return ExecAction(config.exec_argv, timeout=EXEC_TIMEOUT)
    if config.action == "rollout":
        from .rollout import RolloutAction, RolloutConfigError

        try:
            return RolloutAction(
                deployment=config.deployment,
                namespace=config.namespace,
                annotation=config.annotation,
                api_server=config.api_server,
                token_file=config.token_file,
                ca_file=config.ca_file,
                timeout=config.timeout,
            )
        except RolloutConfigError as exc:
            raise ConfigError(str(exc)) from None
    raise ConfigError("--action (AGENTOS_SIDECAR_ACTION): unknown action (the value is not shown)")
