"""The sidecar's Prometheus metrics, in a registry of its own.

Labels carry only kinds, results and reasons: never a URL (configmap-reload leaked
webhook credentials into labels, its issue 204), a path with content, a value or a hash.
Names are listed with their meaning in ``sidecar/README.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WARNING_REASONS", "Metrics"]

PREFIX = "agentos_secrets_sidecar_"

#: The reasons of ``configuration_warnings``, always exported (0 when fine).
WARNING_REASONS = (
    "layout_cannot_rotate",
    "unreadable_key",
    "watch_down",
    "state_file",
    "config_error",
    "metrics_auth",
    "bad_boolean",
)

# Detection-to-action latencies span sub-millisecond (debounce 0) to minutes (breaker).
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600,
)
_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every metric the sidecar exports; ``render()`` gives the text exposition."""

    def __init__(self, action_kind: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.kind = action_kind
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.actions = Counter(
            PREFIX + "actions", "Action attempts by kind and result "
            "(success, retryable_error, config_error).", ["kind", "result"], registry=r,
        )
        for result in ("success", "retryable_error", "config_error"):
            self.actions.labels(action_kind, result)
        self.last_success = Gauge(
            PREFIX + "last_success_timestamp_seconds",
            "Unix time of the last successful action (0: none yet).", registry=r,
        )
        self.pending = Gauge(
            PREFIX + "pending_change",
            "1 while a detected change has not been applied yet.", registry=r,
        )
        self.holding = Gauge(
            PREFIX + "storm_breaker_holding",
            "1 while the storm breaker holds a change (--min-interval, --max-per-hour).",
            registry=r,
        )
        self.watch_events = Counter(
            PREFIX + "watch_events", "File-system events received (hints only).", registry=r,
        )
        self.rechecks = Counter(
            PREFIX + "rechecks", "Periodic re-checks of every watched path (--resync).",
            registry=r,
        )
        self.changes = Counter(
            PREFIX + "changes_detected",
            "Content changes confirmed by the digest (before coalescing).", registry=r,
        )
        self.latency = Histogram(
            PREFIX + "detection_to_action_seconds",
            "From the first confirmed change to the successful action.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.duration = Histogram(
            PREFIX + "action_duration_seconds", "Duration of one action attempt.",
            ["kind"], buckets=_DURATION_BUCKETS, registry=r,
        )
        self.warnings = Gauge(
            PREFIX + "configuration_warnings",
            "Current configuration warnings by reason (e.g. a layout that cannot rotate).",
            ["reason"], registry=r,
        )
        for reason in WARNING_REASONS:
            self.warnings.labels(reason).set(0)
        self.watches_up = Gauge(
            PREFIX + "watches_up", "1 when every watched directory has a live watch.",
            registry=r,
        )
        self.ready = Gauge(PREFIX + "ready", "1 when /readyz would answer 200.", registry=r)
        self.key_pending = Gauge(
            PREFIX + "key_pending",
            "Per key (watch: index of the --watch path; key: its file name), 1 while a"
            " change of its value waits to be applied (as GET /status says).",
            ["watch", "key"], registry=r,
        )
        self.watched_keys = Gauge(
            PREFIX + "watched_keys", "Keys currently hashed across watched paths.", registry=r,
        )

    def action_result(self, result: str, seconds: float) -> None:
        self.actions.labels(self.kind, result).inc()
        self.duration.labels(self.kind).observe(seconds)

    def set_warning(self, reason: str, count: int) -> None:
        self.warnings.labels(reason).set(count)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def value(self, name: str, labels: dict[str, str] | None = None) -> Any:
        """A sample's current value (for tests and the health summary)."""
        return self.registry.get_sample_value(PREFIX + name, labels or {})
