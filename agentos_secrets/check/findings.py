"""The Finding model and the registry of rules with stable IDs.

Both are NamedTuples rather than dataclasses: importing ``dataclasses`` (and ``inspect``
behind it) would cost ``check`` of an environment about 10 ms of start-up for nothing.

Rule IDs never change meaning once published (users suppress them by ID and CI systems
track them across runs): ``AS1xx`` environment and files, ``AS2xx`` manifests, ``AS3xx``
across nodes. A rule's severity is fixed, so the same mistake always fails the same way;
rules that only make sense in production say so with ``profiles=("prod",)``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

__all__ = ["RULES", "Finding", "Rule", "Severity", "rule"]


class Severity(StrEnum):
    """How bad a finding is; ``--fail-on`` picks the lowest that fails the run."""

    ERROR = "error"
    WARNING = "warning"

    @property
    def rank(self) -> int:
        return 2 if self is Severity.ERROR else 1


class Rule(NamedTuple):
    """One check: its stable ID, a short name, severity, a summary and a one-line fix."""

    id: str
    name: str
    severity: Severity
    summary: str
    fix: str
    profiles: tuple[str, ...] = ("dev", "prod")

    @property
    def help_anchor(self) -> str:
        """The anchor of the rule's section in docs/rules.md (heading ``### AS110 name``,
        which GitHub anchors as ``as110-name``)."""
        return f"{self.id.lower()}-{self.name}"


_E, _W = Severity.ERROR, Severity.WARNING
_PROD = ("prod",)

_RULE_LIST: tuple[Rule, ...] = (
    # -- AS1xx: the environment and the secret files -------------------------------------
    Rule("AS101", "secret-file-missing", _E,
         "NAME_FILE names a path that does not exist, dangles or is not absolute.",
         "Point NAME_FILE at the absolute path of the mounted key, e.g. "
         "/etc/agentos/secrets/NAME."),
    Rule("AS102", "secret-file-not-regular", _E,
         "NAME_FILE names a directory, FIFO, socket or device.",
         "Point NAME_FILE at the key file inside the volume, not at the volume directory."),
    Rule("AS103", "secret-file-unreadable", _E,
         "The process may not read the file NAME_FILE names.",
         "Give the file a mode and owner the process can read (fsGroup or defaultMode)."),
    Rule("AS104", "secret-file-writable", _E,
         "The secret file is writable by group or others: anyone could replace the secret.",
         "chmod 0600 (or 0644 when another user must read it); use defaultMode 0440 in pods."),
    Rule("AS105", "secret-file-too-large", _E,
         "The secret file is larger than the Loader's limit (64 KiB).",
         "Point NAME_FILE at the secret itself, not at a bundle or a log."),
    Rule("AS106", "secret-value-invalid", _E,
         "The secret is empty, whitespace only, contains NUL or is not UTF-8.",
         "Write the secret as non-empty UTF-8 text (base64-encode binary keys)."),
    Rule("AS107", "secret-both-set", _E,
         "NAME and NAME_FILE are both set: which one wins depends on the reader.",
         "Unset one of them; in prod keep NAME_FILE."),
    Rule("AS108", "secret-missing", _W,
         "In prod the secret resolves from no source.",
         "Set NAME_FILE to the mounted key, or ignore with a reason when the feature is off.",
         _PROD),
    Rule("AS109", "secret-in-env", _E,
         "In prod the secret comes from a plain environment variable, which never rotates "
         "and leaks through /proc and crash dumps.",
         "Mount the Secret as a volume and set NAME_FILE instead of NAME.", _PROD),
    Rule("AS110", "secret-placeholder", _E,
         "The secret is a placeholder (an example value, changeme, ${...}, <...>, fake_...).",
         "Generate a real secret (e.g. openssl rand -base64 32) and store it in the Secret.",
         _PROD),
    Rule("AS111", "secret-too-short", _E,
         "A token or shared secret is shorter than 32 characters.",
         "Use at least 32 random bytes, e.g. openssl rand -base64 32.", _PROD),
    Rule("AS112", "secret-low-entropy", _E,
         "A token or shared secret has too little entropy (repeated or few distinct "
         "characters).",
         "Generate it from a CSPRNG (openssl rand -base64 32) rather than by hand.", _PROD),
    Rule("AS113", "secret-reused", _E,
         "One value is used under two secret names: compromising one compromises both.",
         "Give every secret its own random value."),
    Rule("AS114", "previous-equals-current", _W,
         "NAME_PREVIOUS equals the current value: the rotation did not change anything.",
         "Write the new value to NAME (or its file) and keep the old one in NAME_PREVIOUS."),
    Rule("AS115", "signing-key-invalid", _E,
         "AGENTOS_SIGNING_KEY is neither a usable private key (RSA >= 2048 bits, EC P-256 "
         "or better, Ed25519/Ed448) nor at least 32 bytes of key material.",
         "Generate a key: openssl genpkey -algorithm ed25519, or openssl rand -base64 32."),
    Rule("AS116", "setting-not-understood", _E,
         "A boolean setting (AGENTOS_METRICS_REQUIRE_AUTH, AGENTOS_ALLOW_DEV_HEADERS, "
         "AGENTOS_SIDECAR_SEND_FINGERPRINT) is not a boolean word, or AGENTOS_PROFILE is "
         "not prod, demo or dev: the components fail closed or run as dev, never as meant.",
         "Write 1/true/yes/on or 0/false/no/off (AGENTOS_PROFILE: prod, demo or dev)."),
    Rule("AS120", "prod-default-tenant", _E,
         "AGENTOS_DEFAULT_TENANT is set in prod: the platform refuses to start.",
         "Unset AGENTOS_DEFAULT_TENANT in prod; callers must name their tenant.", _PROD),
    Rule("AS121", "prod-dev-headers", _E,
         "AGENTOS_ALLOW_DEV_HEADERS reads as on (1, true, yes, on) in prod: the platform "
         "refuses to start on 1, and any true word means dev headers were meant to be on.",
         "Unset AGENTOS_ALLOW_DEV_HEADERS (or set it to 0) in prod.", _PROD),
    Rule("AS122", "prod-metrics-auth", _E,
         "AGENTOS_METRICS_REQUIRE_AUTH is not exactly 1 in prod: the platform refuses to "
         "start (the sidecar reads true/yes/on as on too, but the platform wants 1).",
         'Set AGENTOS_METRICS_REQUIRE_AUTH="1".', _PROD),
    Rule("AS123", "prod-peers-file", _E,
         "Federation in prod without a readable AGENTOS_PEERS_FILE: the platform refuses "
         "to start.",
         "Set AGENTOS_PEERS_FILE to a readable peers.seed.json.", _PROD),
    # -- AS2xx: manifests ---------------------------------------------------------------
    Rule("AS201", "sidecar-missing", _E,
         "A workload uses Secret agentos-secrets but has no secrets-sidecar container: "
         "nothing makes the app pick up a rotation.",
         "Add the components/secrets-sidecar component to the kustomization."),
    Rule("AS202", "sidecar-blocks-start", _E,
         "secrets-sidecar is an init container without restartPolicy: Always: it never "
         "exits, so the pod never starts.",
         "Set restartPolicy: Always on the init container (a native sidecar), or move it "
         "to containers."),
    Rule("AS203", "secret-subpath", _E,
         "A Secret volume is mounted with subPath: the file is bind-mounted once and never "
         "rotates (kubernetes issue 50345).",
         "Mount the whole volume (no subPath) and point NAME_FILE at the key inside it."),
    Rule("AS204", "secret-mount-writable", _W,
         "A Secret volume is mounted without readOnly: true.",
         "Set readOnly: true on the volumeMount."),
    Rule("AS205", "secret-as-env", _E,
         "A Secret is passed as an environment variable (envFrom secretRef, secretKeyRef, "
         "or an AgentOS secret as a literal value): it is fixed at container start and "
         "never rotates.",
         "Mount the Secret as a volume and set NAME_FILE to the key's path."),
    Rule("AS206", "file-outside-volume", _E,
         "A *_FILE path is not inside a mounted volume of the Secret it should come from.",
         "Point NAME_FILE at /etc/agentos/secrets/NAME and mount Secret agentos-secrets "
         "there."),
    Rule("AS207", "file-missing-key", _E,
         "A *_FILE path inside the Secret volume names a key the Secret does not have.",
         "Add the key to the Secret (or its generator), or fix the file name in NAME_FILE."),
    Rule("AS208", "sidecar-no-volume", _E,
         "secrets-sidecar does not mount the Secret volume: it cannot see a rotation.",
         "Mount volume agentos-secrets read-only at /etc/agentos/secrets in the sidecar."),
    Rule("AS209", "rollout-rbac-missing", _E,
         "The sidecar's rollout action lacks a ServiceAccount bound to a Role with get and "
         "patch on this Deployment.",
         "Add ServiceAccount/Role/RoleBinding agentos-secrets-sidecar (see the component) "
         "and set serviceAccountName."),
    Rule("AS210", "signal-no-shared-pid", _E,
         "The sidecar's signal or restart action needs shareProcessNamespace: true to see "
         "the app's process.",
         "Set spec.template.spec.shareProcessNamespace: true (or use the http action)."),
    Rule("AS211", "secret-immutable", _E,
         "Secret agentos-secrets is immutable: it can never be rotated in place.",
         "Drop immutable: true from the Secret (or its generator options)."),
    Rule("AS212", "manifest-setting-not-understood", _E,
         "A container's boolean setting or AGENTOS_PROFILE is not understood (as AS116), or "
         "secrets-sidecar's --action, --log-format, --log-level or --send-fingerprint is "
         "not one of its words, or a numeric flag (--debounce, --resync, --max-per-hour, "
         "...) is not a finite number in range (or --max-wait is shorter than --debounce), "
         "or --listen is not HOST:PORT with an IP address: the sidecar refuses to start "
         "or fails closed.",
         "Use one of the words listed in the message, and numbers in the range it "
         "gives."),
    Rule("AS213", "sidecar-status-unreachable", _E,
         "A workload mounts Secret agentos-secrets but agentos-secrets rotate cannot read "
         "its sidecar's /status through pods/proxy: --listen is off or on loopback, its "
         "port is not declared in the sidecar's ports, or rotate would pick another port.",
         "Keep --listen 0.0.0.0:9095 and declare containerPort 9095 named metrics on "
         "secrets-sidecar (as the component does)."),
    Rule("AS220", "prod-manifest-default-tenant", _E,
         "A prod container sets AGENTOS_DEFAULT_TENANT: the platform refuses to start.",
         "Remove AGENTOS_DEFAULT_TENANT from prod overlays.", _PROD),
    Rule("AS221", "prod-manifest-dev-headers", _E,
         "A prod container sets AGENTOS_ALLOW_DEV_HEADERS to a true word (1, true, yes, on): "
         "the platform refuses to start on 1.",
         "Remove AGENTOS_ALLOW_DEV_HEADERS from prod overlays.", _PROD),
    Rule("AS222", "prod-manifest-metrics-auth", _E,
         "A prod container lacks AGENTOS_METRICS_REQUIRE_AUTH exactly 1 (true is on for "
         "the sidecar, but the platform wants 1).",
         'Set AGENTOS_METRICS_REQUIRE_AUTH: "1" on the container.', _PROD),
    Rule("AS223", "prod-manifest-peers-file", _E,
         "A prod federation container's AGENTOS_PEERS_FILE is unset or not inside a "
         "mounted volume that has it.",
         "Mount ConfigMap agentos-peers at /etc/agentos/peers and set AGENTOS_PEERS_FILE.",
         _PROD),
    Rule("AS224", "prod-mutable-image", _E,
         "A prod container uses :latest or no tag: a restart for a rotation may pull "
         "different code.",
         "Pin a version tag or a digest (kustomize images: newTag / digest).", _PROD),
    Rule("AS225", "prod-profile-mismatch", _E,
         "Checked as prod but the container runs another AGENTOS_PROFILE (unset means dev).",
         'Set AGENTOS_PROFILE: "prod" on the container, or check with --profile dev.', _PROD),
    Rule("AS226", "prod-placeholder-secret", _E,
         "A Secret in prod manifests holds a placeholder value.",
         "Create the Secret outside the repository with real values; do not ship a "
         "generator from secrets.env.example to prod.", _PROD),
    # -- AS3xx: across nodes ------------------------------------------------------------
    Rule("AS301", "fingerprint-mismatch", _E,
         "This node's fingerprint of the secret differs from the one expected (the other "
         "node's).",
         "Put the same value on both nodes, or compare against the right node's "
         "fingerprint (and the same AGENTOS_SECRETS_FINGERPRINT_SALT)."),
    Rule("AS302", "fingerprint-unavailable", _E,
         "A fingerprint was expected but the secret does not resolve on this node.",
         "Make the secret resolve here (see the AS1xx findings) and compare again."),
)

RULES: dict[str, Rule] = {r.id: r for r in _RULE_LIST}


def rule(rule_id: str) -> Rule:
    """The registered rule ``rule_id``; a KeyError is a programming error."""
    return RULES[rule_id]


class Finding(NamedTuple):
    """One problem found. Names what and where; never holds a secret value.

    ``obj``/``field`` locate a finding in manifests (``Deployment/agentos/name`` and a
    field path), ``variable``/``path`` in the environment; ``source`` is the input it came
    from (an env file, a manifest file or kustomization directory).
    """

    rule: Rule
    message: str
    obj: str | None = None
    field: str | None = None
    variable: str | None = None
    path: str | None = None
    source: str | None = None
    #: The line in ``file`` (else in ``source``) to change, when known.
    line: int | None = None
    suppressed: str | None = None
    #: ``"inSource"`` (an annotation on the object) or ``"external"`` (``--ignore``).
    suppression_kind: str | None = None
    #: The file to change, relative to the root (``/`` separators): the env file, the
    #: YAML file, or for a kustomization the resource, patch or kustomization file;
    #: ``<stdin>`` for standard input. None when no file holds it (this process).
    file: str | None = None
    #: The 1-based column of the field in ``file``, when known.
    column: int | None = None

    def spot(self) -> str | None:
        """``file:line:column`` (as far as known), the form editors jump to."""
        if self.file is None:
            return None
        parts = [self.file]
        if self.line:
            parts.append(str(self.line))
            if self.column:
                parts.append(str(self.column))
        return ":".join(parts)

    @property
    def severity(self) -> Severity:
        return self.rule.severity

    @property
    def fix(self) -> str:
        return self.rule.fix

    def where(self) -> str:
        """A one-line location: object and field, or variable and path."""
        parts: list[str] = []
        if self.obj:
            parts.append(self.obj)
        if self.field:
            parts.append(self.field)
        if self.variable:
            parts.append(self.variable)
        if self.path:
            parts.append(f"({self.path})")
        if self.file is None and self.source and (self.line or (self.variable and not self.obj)):
            parts.append(f"in {self.source}" + (f":{self.line}" if self.line else ""))
        return " ".join(parts) or (self.source or "-")

    def suppress(self, reason: str, *, in_source: bool) -> Finding:
        kind = "inSource" if in_source else "external"
        return self._replace(suppressed=reason, suppression_kind=kind)

    def sort_key(self) -> tuple[int, str, str, str]:
        return (-self.severity.rank, self.rule.id, self.obj or "", self.variable or "")
