"""``agentos-secrets rotate``: the rotation runbook (docs/live-secrets.md) as one command.

Modules, one job each: ``values`` (the new value), ``kube`` (the API client: official
``kubernetes`` package for configuration, client-side rate limit and retries),
``discover`` (the Secret, its owner, the pods that mount it), ``status`` (a pod's sidecar
``/status`` and the app's verify counters through ``pods/proxy``), ``gates`` (wait until
every pod converged, or name the laggards), the engine in layers: ``state`` (the
annotations and phases kept in the Secret), ``transitions`` (one Secret write per
transition), ``gating`` (gates and drain), ``sequences`` (forward and roll-back),
``takeover`` (resume, abort) and ``engine`` (the entry points); ``commands``
(``--test-cmd``/``--store-cmd``/``--revoke-cmd``), ``progress`` (terminal, plain lines,
JSON events), ``cli``.

Nothing here is imported by ``import agentos_secrets``; the ``kubernetes`` package is
loaded only when the command runs.
"""
