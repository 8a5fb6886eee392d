"""Starting the demo's service and load client: shared by the demo and the benchmarks."""

from __future__ import annotations

import json

from examples.procs import Child, Children, python_module

STARTUP_TIMEOUT_S = 15.0


def start_service(children: Children, volume: str, grace: float) -> tuple[Child, int]:
    """``examples.service`` on the secret volume; returns it and its port once listening."""
    service = children.start(
        "service",
        python_module("examples.service", "--secret-dir", volume, "--grace", str(grace)),
    )
    line = service.wait_line(lambda ln: '"listening"' in ln.text, STARTUP_TIMEOUT_S)
    if line is None:
        raise RuntimeError("the service did not start:\n" + service.output())
    return service, int(json.loads(line.text)["port"])


def start_client(
    children: Children, port: int, volume: str, rate: float, refresh: float
) -> Child:
    """``examples.load`` calling the service's protected endpoint; returns once it runs."""
    client = children.start(
        "client",
        python_module(
            "examples.load",
            "--url", f"http://127.0.0.1:{port}/v1/models",
            "--secret-dir", volume,
            "--rate", str(rate),
            "--refresh", str(refresh),
        ),
    )  # fmt: skip
    if client.wait_line(lambda ln: '"load-started"' in ln.text, STARTUP_TIMEOUT_S) is None:
        raise RuntimeError("the client did not start:\n" + client.output())
    return client
