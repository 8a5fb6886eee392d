"""``agentos-secrets check``: start-up cost and the cost of checking rendered manifests.

Issue 5 asks that ``agentos-secrets --help`` and ``check`` of an environment start fast
(every heavy import is lazy) and that checking the rendered ``local-dev`` overlay takes
well under a second beyond the render itself. Figures are medians of fresh processes run
interleaved (so load on a shared machine hits every case alike), after a warm-up that
compiles the ``.pyc`` files:

* start-up: ``python -c pass`` (the floor), ``agentos-secrets --help``, and ``check
  --env-file`` of a good prod environment with real files (the Loader, three file reads,
  the signing-key test through ``cryptography``);
* manifests: ``kubectl kustomize`` of the overlay alone, the whole ``check --manifests``
  of the same directory (interpreter + render + rules), and in-process the parse and the
  rules on the already rendered text (what ``check`` adds beyond the render);
* the price of the YAML bounds (issue 11): the bounded loader (compose each document,
  walk its node graph once for depth, aliases and expanded size, construct) against
  plain ``yaml.load_all`` with the same libyaml loader, on the overlay repeated 40 times;
  and how long an alias bomb of a few hundred bytes takes to be refused.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RUNS = int(os.environ.get("BENCH_CHECK_RUNS", "15"))
REPO = Path(__file__).resolve().parents[1]
OVERLAY = REPO / "deploy" / "k8s" / "overlays" / "local-dev"
HEAVY = ("watchdog", "httpx", "cryptography", "pydantic", "prometheus_client", "yaml")


def _good_env(directory: Path) -> Path:
    values = {
        "AGENTOS_SERVICE_TOKEN": "sT4vX9qL2wP7nB3kR8mZ5yC1hJ6dF0gA4eU2iO9tW7c=",
        "AGENTOS_FED_SHARED_SECRET": "Yb3Nw8Kq5Rz1Lp7Tx2Vm9Hc4Js6Df0Ga8Ue3Io5Qt1W=",
        "AGENTOS_SIGNING_KEY": "Mf6Rt1Xz8Kc3Vb9Nq2Lw7Hp4Js0Dg5Ya2Ue8Io6Ts3E=",
    }
    lines = ["AGENTOS_PROFILE=prod", "AGENTOS_METRICS_REQUIRE_AUTH=1"]
    for name, value in values.items():
        path = directory / name
        path.write_text(value + "\n")
        path.chmod(0o600)
        lines.append(f"{name}_FILE={path}")
    env_file = directory / "good.env"
    env_file.write_text("\n".join(lines) + "\n")
    return env_file


def _timer(argv: list[str], expect: int = 0) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, check=False)
        elapsed = time.perf_counter() - started
        if proc.returncode != expect:
            raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {proc.stderr[-300:]!r}")
        return elapsed

    return run


def _medians(cases: dict[str, Callable[[], float]], runs: int) -> dict[str, float]:
    for run in cases.values():  # warm-up: .pyc files, page cache
        run()
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(runs):
        for label, run in cases.items():
            samples[label].append(run())
    return {label: statistics.median(values) for label, values in samples.items()}


def _heavy_after_check(env_file: Path) -> list[str]:
    probe = (
        "import sys, contextlib, io\n"
        "from agentos_secrets.check.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['--env-file', {str(env_file)!r}])\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.split()


def _in_process_rules(rendered: str, runs: int) -> float:
    from agentos_secrets.check.inputs import Manifests, parse_yaml_stream
    from agentos_secrets.check.rules_manifests import check_manifests

    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        manifests = Manifests("local-dev", parse_yaml_stream(rendered, "local-dev"))
        findings = check_manifests(manifests, "dev")
        timings.append(time.perf_counter() - started)
        assert findings == [], [f.rule.id for f in findings]
    return statistics.median(timings[1:])


def _yaml_bounds(rendered: str, runs: int) -> tuple[float, float, float, int, float]:
    """Medians (s) of plain load_all and of the bounded loader on a 40x stream, and of
    refusing an alias bomb; plus the stream's size in bytes, and the median of the
    bounded loader keeping every field's position (what a YAML file or stdin costs)."""
    import yaml

    from agentos_secrets.check.errors import InputError
    from agentos_secrets.check.yamlsafe import load_documents, load_with_positions

    stream = "\n---\n".join([rendered] * 40)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    bomb = "a0: &a0 [x]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 12))
    plain, bounded, refused, positioned = [], [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        docs = list(yaml.load_all(stream, Loader=loader))
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert load_documents(stream, "bench") == docs
        bounded.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert [d for d, _ in load_with_positions(stream, "bench")] == docs
        positioned.append(time.perf_counter() - started)
        started = time.perf_counter()
        try:
            load_documents(bomb, "bomb")
        except InputError:
            refused.append(time.perf_counter() - started)
    assert len(refused) == runs
    return (statistics.median(plain), statistics.median(bounded), statistics.median(refused),
            len(stream.encode()), statistics.median(positioned))


def main() -> None:
    from agentos_secrets.check.kustomize import find_kubectl

    exe = [sys.executable, "-m", "agentos_secrets"]
    with tempfile.TemporaryDirectory() as tmp:
        env_file = _good_env(Path(tmp))
        startup = _medians({
            "python -c pass": _timer([sys.executable, "-c", "pass"]),
            "agentos-secrets --help": _timer([*exe, "--help"]),
            "check --env-file (prod, 3 files)": _timer([*exe, "check", "--env-file",
                                                        str(env_file)]),
        }, RUNS)
        heavy = _heavy_after_check(env_file)
    floor = startup["python -c pass"]
    print(f"start-up, median of {RUNS} fresh processes each (interleaved):")
    for label, seconds in startup.items():
        extra = "" if label == "python -c pass" else (
            f"  (+{(seconds - floor) * 1e3:.0f} ms, x{seconds / floor:.2f} of bare python)")
        print(f"  {label:<34} {seconds * 1e3:7.1f} ms{extra}")
    print(f"  heavy modules loaded by check of an env: {', '.join(heavy) or 'none'}")

    kubectl = find_kubectl()
    rendered = subprocess.run([kubectl, "kustomize", str(OVERLAY)], capture_output=True,
                              text=True, check=True).stdout
    manifests = _medians({
        "kubectl kustomize (render only)": _timer([kubectl, "kustomize", str(OVERLAY)]),
        "check --manifests (whole command)": _timer([*exe, "check", "--no-env",
                                                     "--manifests", str(OVERLAY)]),
    }, RUNS)
    rules = _in_process_rules(rendered, RUNS)
    render = manifests["kubectl kustomize (render only)"]
    whole = manifests["check --manifests (whole command)"]
    print(f"\nlocal-dev overlay ({len(rendered.splitlines())} rendered lines), "
          f"median of {RUNS}:")
    print(f"  kubectl kustomize (render only)    {render * 1e3:7.1f} ms")
    print(f"  check --manifests (whole command)  {whole * 1e3:7.1f} ms  "
          f"(+{(whole - render) * 1e3:.0f} ms beyond the render, x{whole / render:.2f})")
    print(f"  parse + rules in-process           {rules * 1e3:7.1f} ms  "
          f"({rules / render:.2f} of the render)")
    verdict = "yes" if whole - render < 1.0 else "NO"
    print(f"  well under a second beyond the render: {verdict}")

    plain, bounded, refused, size, positioned = _yaml_bounds(rendered, RUNS)
    print(f"\nYAML bounds, overlay x40 ({size // 1024} KiB), median of {RUNS}:")
    print(f"  yaml.load_all (libyaml, unbounded) {plain * 1e3:7.1f} ms")
    print(f"  check's bounded loader             {bounded * 1e3:7.1f} ms  "
          f"(x{bounded / plain:.2f} of unbounded)")
    print(f"  ... keeping every field's position {positioned * 1e3:7.1f} ms  "
          f"(x{positioned / bounded:.2f} of the bounded loader)")
    print(f"  alias bomb (10^11 nodes) refused   {refused * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
