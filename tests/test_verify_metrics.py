"""``verify()`` counters (issue 9): per name and result, thread-safe, exposed to Prometheus
only through ``agentos_secrets.prometheus``, never with a value in them."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agentos_secrets import Loader, MissingSecretError
from agentos_secrets import grace as grace_module
from agentos_secrets.grace import VerifyCounts
from agentos_secrets.prometheus import (
    LAST_PREVIOUS_METRIC,
    VERIFY_METRIC,
    register_verify_metrics,
)

NAME = "AGENTOS_SERVICE_TOKEN"
OTHER = "AGENTOS_FED_SHARED_SECRET"


def _loader(canary) -> Loader:
    return Loader(
        env={
            NAME: canary.value + "-new",
            f"{NAME}_PREVIOUS": canary.value + "-old",
            OTHER: canary.value + "-fed",
        }
    )


def test_each_answer_is_counted_by_name_and_result(canary):
    loader = _loader(canary)
    assert loader.verify_counts() == {}
    assert loader.verify(NAME, canary.value + "-new") == "current"
    assert loader.verify(f"  {NAME} ", canary.value + "-old") == "previous"
    assert loader.verify(NAME, canary.value + "-old") == "previous"
    assert loader.verify(NAME, "wrong") is None
    assert loader.verify(OTHER, canary.value + "-fed") == "current"
    with pytest.raises(MissingSecretError):
        loader.verify("AGENTOS_SIGNING_KEY", "anything")  # raised: not counted
    assert loader.verify_counts() == {
        (NAME, "current"): 1,
        (NAME, "previous"): 2,
        (NAME, "none"): 1,
        (OTHER, "current"): 1,
        (OTHER, "previous"): 0,
        (OTHER, "none"): 0,
    }


def test_the_last_previous_match_is_timestamped(canary):
    loader = _loader(canary)
    loader.verify(NAME, canary.value + "-new")
    assert loader.verify_last_previous() == {}
    before = time.time()
    loader.verify(NAME, canary.value + "-old")
    after = time.time()
    (name, when), = loader.verify_last_previous().items()
    assert name == NAME and before <= when <= after


def test_counts_are_exact_under_concurrent_verify(canary):
    loader = _loader(canary)
    threads, rounds = 8, 300
    start = threading.Barrier(threads)
    presented = [canary.value + "-new", canary.value + "-old", "wrong"]

    def work(index: int) -> None:
        start.wait()
        for i in range(rounds):
            loader.verify(NAME, presented[(index + i) % 3])

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    counts = loader.verify_counts()
    assert sum(counts.values()) == threads * rounds
    assert counts[(NAME, "current")] == counts[(NAME, "previous")] == counts[(NAME, "none")]


def test_the_counter_itself_loses_no_update_between_threads():
    counts = VerifyCounts(wall_clock=lambda: 42.0)
    threads, rounds = 8, 5000

    def work() -> None:
        for _ in range(rounds):
            counts.record(NAME, "previous")

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert counts.counts()[(NAME, "previous")] == threads * rounds
    assert counts.last_previous() == {NAME: 42.0}


def test_the_number_of_names_counted_is_bounded(monkeypatch):
    monkeypatch.setattr(grace_module, "MAX_COUNTED_NAMES", 3)
    counts = VerifyCounts()
    for i in range(5):
        counts.record(f"NAME_{i}", None)
    counts.record("NAME_0", "current")  # a name already counted still counts
    names = {name for name, _ in counts.counts()}
    assert names == {"NAME_0", "NAME_1", "NAME_2"}
    assert counts.counts()[("NAME_0", "current")] == 1


def test_exposition_names_labels_and_values(canary):
    loader = _loader(canary)
    registry = CollectorRegistry()
    collector = register_verify_metrics(loader, registry)
    loader.verify(NAME, canary.value + "-new")
    loader.verify(NAME, canary.value + "-old")
    loader.verify(NAME, canary.value)  # rejected: the canary itself, presented
    text = generate_latest(registry).decode()
    canary.assert_absent(text)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[(VERIFY_METRIC, (("name", NAME), ("result", "current")))] == 1
    assert samples[(VERIFY_METRIC, (("name", NAME), ("result", "previous")))] == 1
    assert samples[(VERIFY_METRIC, (("name", NAME), ("result", "none")))] == 1
    when = samples[(LAST_PREVIOUS_METRIC, (("name", NAME),))]
    assert when == loader.verify_last_previous()[NAME]
    assert f"# TYPE {VERIFY_METRIC} counter" in text
    assert f"# TYPE {LAST_PREVIOUS_METRIC} gauge" in text
    loader.verify(NAME, canary.value + "-new")  # read afresh at each scrape
    assert f'{VERIFY_METRIC}{{name="{NAME}",result="current"}} 2.0' in generate_latest(
        registry
    ).decode()
    registry.unregister(collector)
    assert VERIFY_METRIC not in generate_latest(registry).decode()


def test_importing_the_package_or_the_module_does_not_load_prometheus_client():
    code = (
        "import sys, agentos_secrets, agentos_secrets.prometheus;"
        "loader = agentos_secrets.Loader(env={'A': 'x'}); loader.verify('A', 'x');"
        "loader.verify_counts();"
        "assert 'prometheus_client' not in sys.modules, 'loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
