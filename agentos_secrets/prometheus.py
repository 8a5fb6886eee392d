"""Prometheus metrics for a Loader's ``verify()`` answers (optional; prometheus-client).

::

    from agentos_secrets.prometheus import register_verify_metrics

    register_verify_metrics(loader)              # the default registry, served at /metrics

exposes, for each secret name the Loader has verified:

``agentos_secrets_verify_total{name, result}`` (counter)
    how many times ``verify(name, ...)`` answered ``result``: ``current``, ``previous``
    (a value a rotation replaced, or ``NAME_PREVIOUS``) or ``none`` (rejected);
``agentos_secrets_verify_last_previous_timestamp_seconds{name}`` (gauge)
    the Unix time of the last ``previous`` answer (absent until there is one).

During a rotation the ``previous`` count stops growing, and the timestamp stops moving,
once the last caller has switched to the new value: that is when the old value may be
revoked. ``name`` is the secret's name; no value, fingerprint or caller appears.
``prometheus_client`` is imported here only when :func:`register_verify_metrics` runs,
so ``import agentos_secrets`` never loads it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from .loader import Loader

__all__ = ["LAST_PREVIOUS_METRIC", "VERIFY_METRIC", "register_verify_metrics"]

#: The counter's name as exposed (the client appends ``_total`` to ``agentos_secrets_verify``).
VERIFY_METRIC = "agentos_secrets_verify_total"
LAST_PREVIOUS_METRIC = "agentos_secrets_verify_last_previous_timestamp_seconds"

_VERIFY_HELP = "Answers of Loader.verify() by secret name and result (current, previous, none)."
_LAST_PREVIOUS_HELP = "Unix time of the last Loader.verify() answer 'previous', by secret name."


def register_verify_metrics(loader: Loader, registry: CollectorRegistry | None = None) -> object:
    """Expose ``loader``'s verify counters in ``registry`` (default: the global one).

    Returns the collector: ``registry.unregister(collector)`` removes it. Each scrape
    reads the counters afresh (a copy taken under the counters' lock); nothing is
    recorded twice and nothing runs between scrapes.
    """
    from prometheus_client import REGISTRY
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    class VerifyCollector(Collector):
        def describe(self) -> Iterator[Metric]:
            yield CounterMetricFamily(VERIFY_METRIC, _VERIFY_HELP, labels=["name", "result"])
            yield GaugeMetricFamily(LAST_PREVIOUS_METRIC, _LAST_PREVIOUS_HELP, labels=["name"])

        def collect(self) -> Iterator[Metric]:
            counter = CounterMetricFamily(
                VERIFY_METRIC, _VERIFY_HELP, labels=["name", "result"]
            )
            for (name, result), count in sorted(loader.verify_counts().items()):
                counter.add_metric([name, result], count)
            yield counter
            gauge = GaugeMetricFamily(LAST_PREVIOUS_METRIC, _LAST_PREVIOUS_HELP, labels=["name"])
            for name, when in sorted(loader.verify_last_previous().items()):
                gauge.add_metric([name], when)
            yield gauge

    collector = VerifyCollector()
    (REGISTRY if registry is None else registry).register(collector)
    return collector
