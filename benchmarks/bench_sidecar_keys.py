"""Per-key fingerprints for ``GET /status``: what tracking 20 keys costs the sidecar.

One kubelet-style volume with 20 keys. Measured in the same run, median of several
repetitions:

* the combined digest the loop has always computed (``Detector.refresh``): the
  reference every figure is a ratio against;
* start-up: reading every key the way the Loader does and deriving 20 fingerprints
  (PBKDF2, 100,000 iterations each): paid once;
* one key rotated: re-reading the volume, one derivation (only that key's SHA-256
  changed), against the naive alternative of deriving every key again;
* nothing changed (a touch, a read, the periodic re-check): re-reading only, no
  derivation.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable

from agentos_secrets.secret import _fingerprint_cache, fingerprint_bytes
from agentos_secrets.sidecar.detect import Detector
from agentos_secrets.sidecar.keys import KeyTracker
from agentos_secrets.testing import AtomicWriter
from benchmarks._sidecar import sizes

KEYS = 20
REPEAT = int(sizes(9, 3))


def _median(run: Callable[[], None]) -> float:
    times = []
    for _ in range(REPEAT):
        _fingerprint_cache.clear()  # the in-process memo would hide the derivation
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        writer = AtomicWriter(f"{root}/vol")
        payload = {f"KEY_{i:02d}": f"value-{i}-" + "x" * 40 for i in range(KEYS)}
        writer.write(payload)
        detector = Detector([writer.target_dir])
        digest_s = _median(lambda: detector.refresh())

        def start() -> None:
            tracker = KeyTracker([writer.target_dir])
            tracker.refresh()
            tracker.derive()

        start_s = _median(start)

        tracker = KeyTracker([writer.target_dir])
        tracker.refresh()
        tracker.derive()
        generation = [0]

        def rotate_one() -> None:
            generation[0] += 1
            writer.write({**payload, "KEY_07": f"rotated-{generation[0]}"})
            tracker.refresh()
            assert tracker.derive() == 1

        def write_only() -> None:
            generation[0] += 1
            writer.write({**payload, "KEY_07": f"rotated-{generation[0]}"})

        rotate_s = _median(rotate_one) - _median(write_only)

        def naive() -> None:
            for name in payload:
                fingerprint_bytes(payload[name].encode())

        naive_s = _median(naive)

        tracker.refresh()  # catch up with the last write_only()
        tracker.derive()

        def unchanged() -> None:
            tracker.refresh()
            assert tracker.derive() == 0

        unchanged_s = _median(unchanged)
        derivation_s = start_s / KEYS

    print(f"Per-key fingerprints, {KEYS} keys in one kubelet volume (median of {REPEAT})")
    print(f"  combined digest (Detector.refresh, the reference) {digest_s * 1e3:9.2f} ms")
    print(f"  start-up: read + {KEYS} derivations              {start_s * 1e3:9.2f} ms"
          f"  ({start_s / digest_s:,.0f}x the digest; {derivation_s * 1e3:.1f} ms per key)")
    print(f"  one key rotated: read + 1 derivation            {rotate_s * 1e3:9.2f} ms"
          f"  ({rotate_s / digest_s:,.0f}x the digest)")
    print(f"  naive: derive all {KEYS} keys on each change       {naive_s * 1e3:9.2f} ms"
          f"  (per-key caching is {naive_s / rotate_s:.1f}x cheaper)")
    print(f"  nothing changed: read only, 0 derivations       {unchanged_s * 1e3:9.2f} ms"
          f"  ({unchanged_s / digest_s:.1f}x the digest)")


if __name__ == "__main__":
    main()
