"""``agentos-secrets check``: find before a deploy what would break it or its next rotation.

Data flows one way: :mod:`.inputs` gathers the environment and the rendered manifests
(read with bounds by :mod:`.reading`, :mod:`.yamlsafe` and :mod:`.kustomize`; every field
the rules read type-checked once by :mod:`.shapes`),
the rule modules (:mod:`.rules_env`, :mod:`.rules_manifests`, :mod:`.rules_nodes`) turn
them into :class:`~.findings.Finding` objects, :mod:`.suppress` marks the ones a human
waived with a reason, :mod:`.locate` finds the file, line and column to change (YAML node
marks, kustomize's own provenance records), :mod:`.report` writes text, JSON or SARIF
(:mod:`.ci_formats`: GitHub annotations, JUnit), and :mod:`.cli` maps the worst remaining
finding to the exit code. No finding ever carries a secret value: rules
see values only to judge them, and report names, paths and object fields. Every refusal
is :class:`~.errors.InputError` (exit 2), whose message names the input, never a value.
"""
