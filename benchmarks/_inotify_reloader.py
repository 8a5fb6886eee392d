"""The baseline the sidecar is measured against: raw inotify plus a kept-open HTTP client.

The least a reloader can do: ``inotify_init1`` / ``inotify_add_watch`` / ``read`` through
ctypes on libc, and on the kubelet's ``..data`` swap (``IN_MOVED_TO ..data``) one POST
through a kept-open ``httpx.Client``. No content hash, no coalescing, no state, no
retries: it shows the floor under the sidecar's latency, not a usable tool.

``--per-event`` posts on *every* event instead, which is what a naive reloader does (the
Python k8s-sidecar sends one request per event): the storm benchmark counts its requests.

    python -m benchmarks._inotify_reloader --url URL [--per-event] DIR [DIR ...]

Prints ``ready`` on stdout once every watch is set; exits on SIGTERM.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import struct
import sys
from types import FrameType

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
_MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


def _events(buffer: bytes) -> list[tuple[int, str]]:
    """(mask, name) of each ``struct inotify_event`` in one read."""
    events = []
    offset = 0
    while offset + _HEADER.size <= len(buffer):
        _, mask, _, length = _HEADER.unpack_from(buffer, offset)
        start = offset + _HEADER.size
        name = buffer[start : start + length].split(b"\0", 1)[0].decode("utf-8", "replace")
        events.append((mask, name))
        offset = start + length
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._inotify_reloader")
    parser.add_argument("--url", required=True)
    parser.add_argument("--per-event", action="store_true", help="POST on every event")
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args(argv)

    import httpx

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1 failed")
    for directory in args.dirs:
        if libc.inotify_add_watch(fd, os.fsencode(directory), _MASK) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch failed for {directory}")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    client = httpx.Client(timeout=httpx.Timeout(5.0))
    print("ready", flush=True)
    try:
        while True:
            for mask, name in _events(os.read(fd, 64 * 1024)):
                if args.per_event or (mask & IN_MOVED_TO and name == "..data"):
                    client.post(args.url)
    finally:
        client.close()
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
