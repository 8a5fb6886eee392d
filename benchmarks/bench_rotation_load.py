"""Rotation under load: rejected requests during ten rotations, grace window on and off.

The demo's loop made repeatable: ``examples.service`` (``Loader.verify``), the real
sidecar in ``http`` mode calling its ``/-/reload``, and ``examples.load`` calling the
protected endpoint at 200 requests per second with the token it last read (re-read every
100 ms through its own Loader, as a client that does not stat its token before every
call). ``AGENTOS_SERVICE_TOKEN`` is rotated ten times, 1.5 s apart, once with the service's
grace window at 3 s and once at 0. Requests sent with the old token after the service
saw the new one are rejected unless the grace window accepts them; the goal is zero with
the window on. ``BENCH_QUICK=1``: three rotations.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

from agentos_secrets.testing import AtomicWriter
from benchmarks._sidecar import mode_note, sizes, start_sidecar
from examples.launch import start_client, start_service
from examples.procs import Children

ROTATIONS = sizes(10, 3)
SPACING_S = 1.5
RATE = 200
CLIENT_REFRESH_S = 0.1


def _run(grace: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, Children() as children:
        volume = os.path.join(tmp, "secrets")
        writer = AtomicWriter(volume)
        writer.write({"AGENTOS_SERVICE_TOKEN": "load-token-0000"})
        _service, port = start_service(children, volume, grace)
        start_sidecar(
            children,
            "sidecar",
            [volume],
            f"http://127.0.0.1:{port}/-/reload",
            "--debounce", "0.2", "--min-interval", "0", "--max-per-hour", "100000",
        )  # fmt: skip
        client = start_client(children, port, volume, RATE, CLIENT_REFRESH_S)
        time.sleep(1.0)
        for i in range(1, ROTATIONS + 1):
            writer.write({"AGENTOS_SERVICE_TOKEN": f"load-token-{i:04d}"})
            time.sleep(SPACING_S)
        children.stop(client)
        summary = client.wait_line(lambda ln: '"load-summary"' in ln.text, 5)
        if summary is None:
            raise RuntimeError(f"the client printed no summary:\n{client.output()}")
        result: dict[str, Any] = json.loads(summary.text)
        return result


def main() -> None:
    print(f"Rotation under load: {ROTATIONS} rotations at {RATE} req/s ({mode_note()})")
    results = {grace: _run(grace) for grace in (3.0, 0.0)}
    for grace, r in results.items():
        label = f"grace window {grace:g} s" if grace else "grace window off"
        print(
            f"  {label:<20} {r['requests']:6d} requests  {r['rejected']:4d} rejected"
            f"  {r['errors']:3d} errors"
            f"  (p50 {r['latency_ms_p50']} ms, p99 {r['latency_ms_p99']} ms)"
        )
    on, off = results[3.0]["rejected"], results[0.0]["rejected"]
    verdict = "meets" if on == 0 else "MISSES"
    print(
        f"  the grace window saved {off - on} rejected requests"
        f" ({off / ROTATIONS:.1f} per rotation without it); {verdict} the goal of 0 with it"
    )


if __name__ == "__main__":
    main()
