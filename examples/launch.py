"""Starting the demo's service and load client: shared by the demo and the benchmarks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from examples.procs import Child, Children, python_module

STARTUP_TIMEOUT_S = 15.0


def start_service(
    children: Children, volume: str, grace: float, name: str = "service"
) -> tuple[Child, int]:
    """``examples.service`` on the secret volume; returns it and its port once listening."""
    service = spawn_service(children, volume, grace, name)
    return service, service_port(service)


def spawn_service(children: Children, volume: str, grace: float, name: str = "service") -> Child:
    """Start ``examples.service`` without waiting (see :func:`service_port`)."""
    return children.start(
        name,
        python_module("examples.service", "--secret-dir", volume, "--grace", str(grace)),
    )


def service_port(service: Child) -> int:
    """Wait until a service started by :func:`spawn_service` listens; its port."""
    line = service.wait_line(lambda ln: '"listening"' in ln.text, STARTUP_TIMEOUT_S)
    if line is None:
        raise RuntimeError(f"the {service.name} did not start:\n" + service.output())
    return int(json.loads(line.text)["port"])


def start_client(children: Children, port: int, volume: str, rate: float, refresh: float) -> Child:
    """``examples.load`` calling the service's protected endpoint; returns once it runs."""
    return start_load(children, "client", [port], volume, rate, refresh)


def start_load(
    children: Children,
    name: str,
    ports: Sequence[int],
    volume: str,
    rate: float,
    refresh: float,
) -> Child:
    """``examples.load`` calling ``/v1/models`` on each of ``ports`` in turn, with the
    token read from ``volume``; returns once it runs."""
    urls: list[str] = []
    for port in ports:
        urls += ["--url", f"http://127.0.0.1:{port}/v1/models"]
    client = children.start(
        name,
        python_module(
            "examples.load",
            *urls,
            "--secret-dir", volume,
            "--rate", str(rate),
            "--refresh", str(refresh),
        ),
    )  # fmt: skip
    if client.wait_line(lambda ln: '"load-started"' in ln.text, STARTUP_TIMEOUT_S) is None:
        raise RuntimeError(f"the {name} did not start:\n" + client.output())
    return client


def load_summary(children: Children, client: Child, timeout: float = 5.0) -> dict[str, Any]:
    """Stop a load client and return its closing JSON summary."""
    children.stop(client)
    line = client.wait_line(lambda ln: '"load-summary"' in ln.text, timeout)
    if line is None:
        raise RuntimeError(f"the {client.name} printed no summary:\n" + client.output())
    summary: dict[str, Any] = json.loads(line.text)
    return summary
