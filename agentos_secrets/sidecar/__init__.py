"""The rotation sidecar: detect real changes of mounted Secrets and act once, reliably.

Run as ``agentos-secrets sidecar``; see ``sidecar/README.md`` for every flag and metric.
"""
