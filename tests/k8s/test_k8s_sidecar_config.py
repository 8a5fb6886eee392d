"""The sidecar accepts the configuration each rendering gives it.

The sidecar is configured by ``env:`` alone, and an unknown ``AGENTOS_SIDECAR_*`` name
would be ignored without a word. So for every rendered sidecar: every such variable
names a real flag, and the sidecar's own parser (``agentos_secrets.sidecar.config``)
accepts the environment as the kubelet would build it (downward API fields resolved from
the pod template) and reads back the intended action, watch, state, target and
credentials paths.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from k8s_render import (
    DEPLOYMENTS,
    SA_TOKEN_PATH,
    SECRET_MOUNT,
    SIDECAR,
    TARGETS,
    Obj,
    Target,
    container,
    mounts,
    render,
    volumes,
)

from agentos_secrets.sidecar.config import ENV_PREFIX, Config, parse

FIELD = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]\Z")


def _resolve(field_path: str, deployment: Obj) -> str:
    """What the kubelet puts in an env var from a downward API ``fieldRef``."""
    meta = deployment["spec"]["template"]["metadata"]
    if field_path == "metadata.namespace":
        return deployment["metadata"]["namespace"]
    if field_path == "metadata.name":  # the pod's name: the Deployment's plus a suffix
        return deployment["metadata"]["name"] + "-7d9f8c6b5-x2k4q"
    match = FIELD.match(field_path)
    assert match, f"unsupported fieldRef {field_path}"
    # A missing label or annotation resolves to the empty string.
    return meta.get(match.group(1), {}).get(match.group(2), "")


def _environment(sidecar: Obj, deployment: Obj) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in sidecar.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            env[entry["name"]] = _resolve(entry["valueFrom"]["fieldRef"]["fieldPath"],
                                          deployment)
    return env


CASES = [(t, name) for t in TARGETS for name in DEPLOYMENTS]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}:{c[1]}")
def test_the_sidecar_parses_its_rendered_environment(case: tuple[Target, str]) -> None:
    target, name = case
    deployment = render(target.path).get("Deployment", name)
    sidecar = container(deployment, SIDECAR)
    env = _environment(sidecar, deployment)

    known = {f.name for f in dataclasses.fields(Config)} | {"exec"}
    for key in env:
        if key.startswith(ENV_PREFIX):
            flag = key.removeprefix(ENV_PREFIX).lower()
            assert flag in known, f"{key} is no sidecar flag: it would be ignored"

    command = sidecar["command"]
    assert command[:2] == ["agentos-secrets", "sidecar"]
    config = parse([*command[2:], *sidecar.get("args", [])], env)

    assert config.action == target.action
    assert config.watch == (SECRET_MOUNT,)
    assert config.state_file == "/var/run/agentos-secrets/state.json"
    assert config.listen_address == ("0.0.0.0", 9095)
    if target.action == "rollout":
        assert (config.deployment, config.namespace) == (name, "agentos")
        # The defaults land in the projected token volume, mounted only here.
        token_mount = {m["mountPath"]: m["name"] for m in mounts(sidecar)}[SA_TOKEN_PATH]
        paths = {item["path"] for source in volumes(deployment)[token_mount]["projected"][
            "sources"] for item in _projected_paths(source)}
        assert config.token_file == f"{SA_TOKEN_PATH}/token"
        assert config.ca_file == f"{SA_TOKEN_PATH}/ca.crt"
        assert {"token", "ca.crt", "namespace"} <= paths
    elif target.action in {"signal", "restart"}:
        assert config.target_name == "agentos"
    elif target.action == "http":
        assert config.url is not None and config.url.startswith("http://127.0.0.1:")


def _projected_paths(source: Obj) -> list[Obj]:
    if "serviceAccountToken" in source:
        return [{"path": source["serviceAccountToken"]["path"]}]
    (kind,) = source
    return list(source[kind].get("items", []))


class _NotReadyAction:
    """The action's target is missing (the app has not started yet)."""

    kind = "rollout"
    uses_fingerprint = True

    def ready(self) -> str | None:
        return "no target yet"

    def apply(self, fingerprint: str) -> None:
        raise AssertionError("no change happens in this test")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_the_probes_hit_endpoints_the_sidecar_serves(target: Target, tmp_path) -> None:
    """Each probe's port is the sidecar's --listen port and its path a real endpoint;
    the startup probe passes while the action's target is still missing (the app starts
    only after a native sidecar's startup probe passes)."""
    import time

    import httpx

    from agentos_secrets.sidecar.coalesce import Coalescer, StormBreaker
    from agentos_secrets.sidecar.detect import Detector
    from agentos_secrets.sidecar.loop import Engine
    from agentos_secrets.sidecar.metrics import Metrics
    from agentos_secrets.sidecar.retry import Backoff
    from agentos_secrets.sidecar.server import MetricsAuth, Server
    from agentos_secrets.testing import AtomicWriter
    from agentos_secrets.watch import DirectoryWatcher

    deployment = render(target.path).get("Deployment", DEPLOYMENTS[0])
    sidecar = container(deployment, SIDECAR)
    config = parse([*sidecar["command"][2:], *sidecar.get("args", [])],
                   _environment(sidecar, deployment))
    assert config.listen_address is not None
    ports = {p["name"]: p["containerPort"] for p in sidecar.get("ports", [])}
    probes = {kind: sidecar[kind]["httpGet"] for kind in
              ("startupProbe", "livenessProbe", "readinessProbe") if kind in sidecar}
    assert "livenessProbe" in probes and "startupProbe" in probes

    writer = AtomicWriter(tmp_path / "vol")
    writer.write({"AGENTOS_SERVICE_TOKEN": "v0"})
    detector = Detector([writer.target_dir])
    box: list[Engine] = []
    watcher = DirectoryWatcher(detector.directories, lambda hint: box[0].hint(hint))
    metrics = Metrics("rollout")
    engine = Engine(detector=detector, action=_NotReadyAction(), metrics=metrics,
                    coalescer=Coalescer(0, 0), breaker=StormBreaker(0, 1), backoff=Backoff(),
                    resync=60, watcher=watcher)
    box.append(engine)
    server = Server(("127.0.0.1", 0), engine, metrics, MetricsAuth({}), time.monotonic)
    server.start()
    try:
        engine.start(time.monotonic())
        base = f"http://127.0.0.1:{server.address[1]}"
        for kind, get in probes.items():
            port = ports.get(get["port"], get["port"])
            assert port == config.listen_address[1], f"{kind} probes port {get['port']}"
            status = httpx.get(base + get["path"], timeout=5).status_code
            assert status != 404, f"{kind} path {get['path']} is not served"
            if kind != "readinessProbe":
                assert status == 200, f"{kind} {get['path']} waits for the action's target"
    finally:
        server.stop()
        watcher.stop()
