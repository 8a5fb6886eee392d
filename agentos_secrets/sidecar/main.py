"""``agentos-secrets sidecar``: wire configuration, action, loop, watches and server.

Start-up order matters: the probe server listens first (so the kubelet sees a live
process at once), then the engine starts its watches *before* hashing the baseline (a
rotation in between is not missed), and any action runs on the loop's own thread: the
start-up never waits for the app, so the sidecar works as a native sidecar (an init
container with ``restartPolicy: Always``) that must be "started" before the app runs.

SIGTERM and SIGINT stop within ``--shutdown-timeout`` (default 20 s, under Kubernetes'
30 s grace): the attempt in progress is interrupted (see :func:`_shutdown`), the server
and the watches close, exit status 0. A configuration error exits with status 2 and a
message naming the flag and its variable, never its value.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from .config import Config, ConfigError, parse

__all__ = ["main"]

logger = logging.getLogger("agentos_secrets.sidecar")


def _action_budget(config: Config) -> float:
    """How long one attempt may take before ``/healthz`` calls the loop stalled."""
    from .actions import EXEC_TIMEOUT

    return {
        "http": 4 * config.timeout,
        "rollout": 8 * config.timeout,
        "restart": config.grace_period + 10,
        "signal": 10.0,
        "exec": EXEC_TIMEOUT + 5,
        "none": 10.0,
    }.get(config.action, 60.0)


def _shutdown(
    config: Config,
    engine: object,
    action: object,
    thread: threading.Thread,
    server: object | None,
    watcher: object,
) -> bool:
    """Stop everything within ``--shutdown-timeout``; False if the action outlived it.

    The attempt in progress is interrupted (``abort``: an ``exec`` command's process group
    gets SIGTERM then SIGKILL, a ``restart`` stops waiting), never waited out: the
    kubelet sends SIGKILL after the pod's grace period (30 s by default), and a hung
    action used to hold the sidecar for a minute. An HTTP request still blocked at the
    end is left to die with the process (its thread is a daemon).
    """
    import time

    deadline = time.monotonic() + config.shutdown_timeout

    def left(cap: float) -> float:
        return max(0.0, min(cap, deadline - time.monotonic()))

    engine.stop()  # type: ignore[attr-defined]
    abort = getattr(action, "abort", None)
    if abort is not None:
        abort(left(config.shutdown_timeout / 2))
    thread.join(left(config.shutdown_timeout))
    cleanly = not thread.is_alive()
    engine.close(left(5.0))  # type: ignore[attr-defined]
    if server is not None:
        server.stop()  # type: ignore[attr-defined]
    watcher.stop(left(5.0))  # type: ignore[attr-defined]
    if cleanly:  # else the action's thread may still use its client
        action.close()  # type: ignore[attr-defined]
    return cleanly


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before any thread starts (``MALLOC_ARENA_MAX``).

    With 20 watched directories the sidecar runs ~25 threads (one watchdog emitter per
    directory); by default glibc may give each its own arena, about 0.5 MiB of resident
    memory here against a 30 MiB budget. The threads are mostly asleep, so sharing two
    arenas costs nothing measurable. Not glibc (musl, macOS): nothing to do.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return  # the operator chose
    try:
        import ctypes  # loaded by watchdog anyway

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_arena_max = -8  # <malloc.h>
    mallopt(m_arena_max, arenas)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sidecar until SIGTERM/SIGINT; the exit status."""
    _limit_malloc_arenas()
    from . import logs

    args = sys.argv[1:] if argv is None else argv
    try:
        config = parse(args)
    except ConfigError as exc:
        # One JSON line like every other (the default format), or text when asked for.
        logs.setup(logs.guess_format(args, os.environ), "INFO")
        logger.error("agentos-secrets sidecar: %s", exc, extra={"fields": {"exit": 2}})
        return 2

    logs.setup(config.log_format, config.log_level)
    from .actions import build

    try:
        action = build(config)
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return 2
    return _run(config, action)


def _run(config: Config, action: object) -> int:
    import time

    from ..files import shown_path
    from ..watch import DirectoryWatcher
    from .coalesce import Coalescer, StormBreaker
    from .detect import Detector
    from .logs import redact
    from .loop import Engine
    from .metrics import Metrics
    from .retry import Backoff
    from .server import MetricsAuth, Server
    from .state import StateFile

    kind = str(getattr(action, "kind", config.action))
    metrics = Metrics(kind)
    detector = Detector(config.watch)
    engine: Engine
    watcher = DirectoryWatcher(detector.directories, lambda hint: engine.hint(hint))
    engine = Engine(
        detector=detector,
        action=action,  # type: ignore[arg-type]
        metrics=metrics,
        coalescer=Coalescer(config.debounce, config.max_wait),
        breaker=StormBreaker(config.min_interval, config.max_per_hour),
        backoff=Backoff(config.backoff_initial, config.backoff_max),
        resync=config.resync,
        state_file=StateFile(config.state_file) if config.state_file else None,
        watcher=watcher,
        action_budget=_action_budget(config),
        record_in_background=True,
    )

    server: Server | None = None
    address = config.listen_address
    if address is not None:
        try:
            auth = MetricsAuth(os.environ, secret_dirs=detector.directories)
            metrics.set_warning("bad_boolean", 1 if auth.setting_problem else 0)
            server = Server(address, engine, metrics, auth, time.monotonic)
        except OSError as exc:
            logger.error("cannot listen on %s: %s", config.listen,
                         exc.strerror or type(exc).__name__)
            action.close()  # type: ignore[attr-defined]
            return 2
        server.start()

    stop = threading.Event()
    crashed: list[BaseException] = []

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def run_engine() -> None:
        try:
            engine.run()
        except BaseException as exc:  # the loop must not die silently
            crashed.append(exc)
            logger.error("the sidecar loop crashed", exc_info=True)
        finally:
            stop.set()

    listen = "{}:{}".format(*server.address) if server else None
    logger.info(
        "sidecar starting",
        extra={"fields": {
            "action": kind, "target": redact(repr(action)), "watch": list(config.watch),
            "listen": listen, "debounce_s": config.debounce, "max_wait_s": config.max_wait,
            "min_interval_s": config.min_interval, "max_per_hour": config.max_per_hour,
            "resync_s": config.resync,
            "state_file": shown_path(config.state_file) if config.state_file else None,
            "pid": os.getpid(),
        }},
    )
    thread = threading.Thread(target=run_engine, name="sidecar-loop", daemon=True)
    thread.start()
    try:
        while not stop.wait(3600):
            pass
    finally:
        stopped_cleanly = _shutdown(config, engine, action, thread, server, watcher)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not stopped_cleanly:
        logger.warning("an action was still running at the end of --shutdown-timeout;"
                       " exiting without waiting for it",
                       extra={"fields": {"shutdown_timeout_s": config.shutdown_timeout}})
    if crashed:
        return 1
    logger.info("sidecar stopped", extra={"fields": {"applied": engine.applied_fp}})
    return 0
