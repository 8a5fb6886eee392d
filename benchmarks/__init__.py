"""Benchmarks of agentos-secrets, each beside the alternative measured in the same run.

Every ``bench_<topic>.py`` has a ``main() -> None`` that prints a short titled block of
results with ratios. ``python -m benchmarks`` runs them all in name order;
``python -m benchmarks <topic> [...]`` runs the named ones (``loader`` or ``bench_loader``).
Timings live here, never in the unit tests: a shared CI machine makes them noisy, so each
benchmark compares against its alternative in the same process and the same minute.
"""
